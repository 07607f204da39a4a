"""A real `tether serve` process for the tests that need one (uvicorn on 127.0.0.1, keys made
with `tether keys create`): the `tether_serve` fixture gives `serving`, a context manager that
starts it on a fresh database and stops it, checking it logged no traceback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tether_cli(*args: str) -> str:
    """Run `tether ARGS` in a subprocess; its stdout (it must succeed)."""
    done = subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Served:
    base: str
    port: int
    proc: subprocess.Popen[str]
    tmp: Path
    #: label -> the key `tether keys create` printed
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def ledger(self) -> Path:
        """Where the test agents' governed tools write their side effects."""
        return self.tmp / "ledger.txt"


@contextlib.contextmanager
def serving(tmp: Path, agents: str, *args: str,
            keys: dict[str, tuple[str, str, str | None]] | None = None,
            ready: str = "/openapi.json") -> Iterator[Served]:
    """`tether serve` on `tmp/tether.db` with the agents file `agents` and extra CLI `args`;
    `keys`: label -> (tenant, role, name or None), created before it starts. Ready once
    `ready` answers 200; stopped (SIGTERM) on exit, and its output must hold no traceback."""
    db = tmp / "tether.db"
    (tmp / "agents.yaml").write_text(agents)
    made = {}
    for label, (tenant, role, name) in (keys or {}).items():
        named = ("--name", name) if name else ()
        made[label] = tether_cli("keys", "create", "--tenant", tenant, "--role", role, *named,
                                 "--db", str(db)).split()[0]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port), "--agents",
         str(tmp / "agents.yaml"), "--db", str(db), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TETHER_TEST_LEDGER": str(tmp / "ledger.txt")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, _ = proc.communicate(timeout=30)
                raise AssertionError(f"tether serve did not start: {out}")
            time.sleep(0.2)
        yield Served(base, port, proc, tmp, made)
    finally:
        if proc.poll() is None:
            proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out, out


@pytest.fixture(scope="session")
def tether_serve() -> Callable[..., contextlib.AbstractContextManager[Served]]:
    return serving
