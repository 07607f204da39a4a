"""A real HTTP server for the hostile-client tests: the app of `tether serve` under uvicorn on
127.0.0.1 (in a thread of the test process, so a test may look at the store it serves), a fresh
SQLite database, and the keys of `api_support.KEYS` (two tenants, every role).

In-process rather than a subprocess because some attacks need the server's own store to check
what was (not) written; the bytes still cross a real socket, so headers that an ASGI test
client would normalise (non-ASCII values, repeated names) reach the server as sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tether.server.api import create_app

from . import api_support as S


@dataclass
class Live:
    """A served app: `base` URL, the keys by label, the app (its state holds the store)."""

    base: str
    port: int
    keys: dict[str, str]
    app: Any

    def auth(self, label: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[label]}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, **kwargs)

    def submit(self, agent: str, inp: Any = None, label: str = "operator") -> str:
        with self.client() as c:
            r = c.post("/v1/runs", json={"agent": agent, "input": inp}, headers=self.auth(label))
        assert r.status_code == 201, r.text
        return str(r.json()["run"]["id"])

    def wait(self, run_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                body: dict[str, Any] = c.get(f"/v1/runs/{run_id}",
                                             headers=self.auth("viewer")).json()
                if body["run"]["status"] in statuses:
                    return body
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id} is {body['run']['status']}")
                time.sleep(0.05)

    def raw(self, request: bytes) -> bytes:
        """Send `request` as is over a socket; the whole answer (the server closes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(request)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live(tmp: Path, **kwargs: Any) -> Iterator[Live]:
    """The app on `tmp/tether.db`, served by uvicorn until the block ends. `kwargs` go to
    `api_support.config` (ServerConfig fields)."""
    db = tmp / "tether.db"
    keys = S.make_keys(db)
    kwargs.setdefault("signing_keys", S.write_signing_keys(tmp / "signing-keys"))
    app = create_app(S.config(db, **kwargs))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           timeout_keep_alive=1))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", port, keys, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def approval_of(served: Live, run_id: str) -> str:
    """The id of the pending approval of a run that waits in the inbox."""
    served.wait(run_id, "waiting")
    with served.client() as c:
        pending = c.get("/v1/approvals", headers=served.auth("viewer")).json()["approvals"]
    [found] = [a["id"] for a in pending if a["run_id"] == run_id]
    return str(found)
