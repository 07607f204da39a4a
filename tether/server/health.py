"""Liveness and readiness probes: `GET /healthz` and `GET /readyz`, on `tether serve` and, with
`--health-port`, on `tether worker` (with `GET /metrics` beside them, `prometheus.py`).

Why: a supervisor (a Kubernetes probe, a load balancer, systemd) restarts what is dead and
sends no work to what is not ready, and it asks over HTTP without an API key. `/healthz` says
whether the process should be restarted (its worker's event loop stalled: runs and lease
renewals stopped while the process looks alive); `/readyz` whether it can do its job now (the
store answers, the worker's claims and renewals work). The answers name no tenant, run or key;
the worker's probe server runs on a thread of its own, so it still answers, with the stall,
when the event loop is blocked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tether.runtime import WorkerHealth
from tether.store import Store

from .prometheus import CONTENT_TYPE as PROMETHEUS_TYPE
from .prometheus import QueueCounts, exposition

#: seconds the event loop may stay silent before a worker counts as stalled (`--health-stall`)
STALL_AFTER_S = 10.0


def probe_answer(path: str, health: WorkerHealth | None, *, stall_after: float = STALL_AFTER_S,
                 store_problem: str | None = None) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of probe `path` ("/healthz" or "/readyz"): 200 with
    `{"status": "ok"}`, or 503 with `"problems"` (sentences an operator can act on).
    `health`: the process's worker, if it runs one; `store_problem`: why the store did not
    answer a readiness check, if it did not (readiness only)."""
    ready = path == "/readyz"
    problems = health.problems(stall_after=stall_after, ready=ready) if health else []
    if ready and store_problem:
        problems.insert(0, store_problem)
    if problems:
        return 503, {"status": "not ready" if ready else "stalled", "problems": problems}
    return 200, {"status": "ok"}


class StoreCheck:
    """Whether the store answers a read (its schema version) within `timeout` seconds.

    One check at a time: a store that hangs (a table locked by a migration, a server that
    stopped answering) holds the thread and the connection of the check that waits on it, and
    a probe every few seconds must not pile up more of them until the pool is gone."""

    def __init__(self, store: Store, *, timeout: float = 2.0) -> None:
        self.store = store
        self.timeout = timeout
        self._pending: asyncio.Future[int] | None = None
        self._started = 0.0

    async def problem(self) -> str | None:
        """None when the store answered; else why not, for an operator."""
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(asyncio.to_thread(self.store.schema_version))
            self._started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(self._pending), self.timeout)
        except TimeoutError:
            return (f"the store has not answered a read started "
                    f"{time.monotonic() - self._started:.1f}s ago (locked, or unreachable)")
        except Exception as exc:  # the store's refusal, whatever it is: say what it said
            return f"the store cannot be read: {' '.join(str(exc).split())[:500]}"
        return None


class HealthServer:
    """`/healthz`, `/readyz` and (given the store) `/metrics` for a worker process, on a thread
    of their own."""

    def __init__(self, health: Callable[[], WorkerHealth], *, host: str = "127.0.0.1",
                 port: int = 0, stall_after: float = STALL_AFTER_S,
                 store: Store | None = None) -> None:
        answer = self._answer
        self._health = health
        self.stall_after = stall_after
        self._counts = QueueCounts(store) if store is not None else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = answer(self.path.split("?", 1)[0])
                if isinstance(body, str):
                    data, ctype = body.encode(), PROMETHEUS_TYPE
                else:
                    data, ctype = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a probe every few seconds is not news

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="tether-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _answer(self, path: str) -> tuple[int, dict[str, Any] | str]:
        if path == "/metrics" and self._counts is not None:
            return 200, exposition(self._health(), self._counts.get())
        if path not in ("/healthz", "/readyz"):
            return 404, {"status": "not found", "problems": [
                f"nothing at {path[:100]!r}: ask /healthz (liveness), /readyz (readiness) or "
                "/metrics (Prometheus)"]}
        return probe_answer(path, self._health(), stall_after=self.stall_after)

    def __enter__(self) -> HealthServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
