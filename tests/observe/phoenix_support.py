"""Arize Phoenix on 127.0.0.1 for the tests, the tracing benchmark and the screenshots.

One way to get a Phoenix: `make phoenix` (in the Makefile's SERVICES, so `make test` runs it)
installs it into its own venv (.tether/phoenix-venv: its dependencies clash with ours) and calls
`start` below; a test run straight from pytest gets the same through the `phoenix` fixture
(tests/observe/test_phoenix.py), which calls `ensure` and stops only a Phoenix it started.
A healthy Phoenix already listening (the one `make` left running) is reused, never restarted.

    .venv/bin/python -m tests.observe.phoenix_support start|stop|status

Environment: `TETHER_PHOENIX_URL` (default http://127.0.0.1:16006; the HTTP port also takes
OTLP/HTTP at /v1/traces) and `TETHER_PHOENIX_GRPC_PORT` (default 14317, OTLP/gRPC). The ports
are not Phoenix's defaults (6006, 4317) so a developer's own Phoenix or collector is not mistaken
for ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
VERSION = "20.26.1"  # keep in step with PHOENIX_VERSION in mk/observe.mk
VENV = ROOT / ".tether" / "phoenix-venv"
WORKDIR = ROOT / ".tether" / "phoenix"
PIDFILE = WORKDIR / "phoenix.pid"
LOG = WORKDIR / "phoenix.log"
STARTUP_TIMEOUT_S = 240.0  # first start runs its database migrations; slow on a loaded machine


class PhoenixUnavailable(RuntimeError):
    """Phoenix could not be installed, started or reached; the message says what to do."""


@dataclass(frozen=True)
class Phoenix:
    """Where a running Phoenix listens, and whether this process started it."""

    url: str
    grpc_port: int
    started_here: bool = False

    @property
    def otlp_http(self) -> str:
        """The base endpoint for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""
        return self.url

    @property
    def otlp_grpc(self) -> str:
        return f"http://{urlsplit(self.url).hostname}:{self.grpc_port}"

    def spans(self, project: str, trace_id: str | None = None, *, expect: int = 1,
              timeout: float = 120.0, settle: float = 1.0) -> list[dict[str, Any]]:
        """The spans of `project` (of one trace when `trace_id` is given), through Phoenix's
        REST API (GET /v1/projects/{project}/spans). Phoenix ingests OTLP asynchronously, so
        this polls until at least `expect` spans are there and their number has not changed for
        `settle` seconds (spans still arriving would show as a later change)."""
        deadline = time.monotonic() + timeout
        found = self._spans_once(project, trace_id)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self._spans_once(project, trace_id)
            if len(now) != len(found):
                found, stable_since = now, time.monotonic()
            elif len(found) >= expect and time.monotonic() - stable_since >= settle:
                break
        return found

    def _spans_once(self, project: str, trace_id: str | None) -> list[dict[str, Any]]:
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if trace_id is not None:
                params["trace_id"] = trace_id
            if cursor:
                params["cursor"] = cursor
            reply = httpx.get(f"{self.url}/v1/projects/{project}/spans", params=params,
                              timeout=10.0)
            if reply.status_code == 404:  # the project appears with its first span
                return spans
            reply.raise_for_status()
            body = reply.json()
            spans.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return spans


def url() -> str:
    return os.environ.get("TETHER_PHOENIX_URL", "http://127.0.0.1:16006").rstrip("/")


def grpc_port() -> int:
    return int(os.environ.get("TETHER_PHOENIX_GRPC_PORT", "14317"))


def running_version(base: str) -> str | None:
    """The Phoenix version answering at `base`, or None when nothing healthy answers there."""
    try:
        health = httpx.get(f"{base}/healthz", timeout=3.0)
        if health.status_code != 200:
            return None
        version = httpx.get(f"{base}/arize_phoenix_version", timeout=3.0)
    except httpx.HTTPError:
        return None
    return version.text.strip() if version.status_code == 200 else None


def installed() -> bool:
    return (VENV / "bin" / "phoenix").exists()


def start() -> Phoenix:
    """Reuse a healthy Phoenix at `url()`, else start one in the background and wait for it."""
    base = url()
    version = running_version(base)
    if version is not None and (version == VERSION or not PIDFILE.exists()):
        return Phoenix(base, grpc_port())  # ours, or someone else's Phoenix: used as it is
    if version is not None:
        stop()  # ours, from before a version bump reinstalled the venv under it
    if not installed():
        raise PhoenixUnavailable(
            f"Phoenix is not installed in {VENV}: run `make phoenix` (installs arize-phoenix "
            f"{VERSION} into its own venv and starts it) from {ROOT}")
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise PhoenixUnavailable(f"TETHER_PHOENIX_URL={base}: not running there, and only a "
                                 "Phoenix on 127.0.0.1 can be started here")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(WORKDIR), "PHOENIX_HOST": host,
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc_port()),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    for inherited in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                      "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_SQL_DATABASE_URL"):
        env.pop(inherited, None)  # Phoenix would trace itself into ours
    with LOG.open("ab") as log:
        proc = subprocess.Popen([str(VENV / "bin" / "phoenix"), "serve"], cwd=WORKDIR, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # outlives `make`: a service
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while running_version(base) is None:
        if proc.poll() is not None:
            raise PhoenixUnavailable(f"Phoenix exited with {proc.returncode} while starting; "
                                     f"its log, {LOG}, ends with:\n{_tail(LOG)}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise PhoenixUnavailable(f"Phoenix did not answer {base}/healthz within "
                                     f"{STARTUP_TIMEOUT_S:.0f} s; its log, {LOG}, ends with:\n"
                                     f"{_tail(LOG)}")
        time.sleep(0.5)
    return Phoenix(base, grpc_port(), started_here=True)


def stop() -> bool:
    """Stop the Phoenix this checkout started (by the pid it recorded); False if none was."""
    try:
        pid = int(PIDFILE.read_text())
    except (FileNotFoundError, ValueError):
        return False
    PIDFILE.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and any helper it forked
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "start":
        try:
            phoenix = start()
        except PhoenixUnavailable as error:
            print(f"phoenix: {error}", file=sys.stderr)
            return 1
        how = "started" if phoenix.started_here else "already running"
        print(f"phoenix {VERSION}: {how} at {phoenix.url} (OTLP/gRPC {phoenix.otlp_grpc})")
        return 0
    if command == "stop":
        print("phoenix: stopped" if stop() else "phoenix: none started from this checkout")
        return 0
    if command == "status":
        version = running_version(url())
        print(f"phoenix {version} at {url()}" if version else f"phoenix: nothing at {url()}")
        return 0 if version else 1
    print(f"usage: python -m tests.observe.phoenix_support start|stop|status (not {command!r})",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
