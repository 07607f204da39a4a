"""`GET /healthz`, `/readyz` and `/metrics` beside `/mcp` on `tether mcp serve --http`: the same
answers as `tether serve` and a worker's probe server give (`tether.server.health`,
`tether.server.prometheus`), for the supervisor that runs the MCP server. No key, no tenant's
data; answered by the server's event loop (a blocked loop does not answer: the probe's timeout
is the verdict)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tether.runtime import Worker
from tether.server.health import StoreCheck, probe_answer
from tether.server.prometheus import CONTENT_TYPE, QueueCounts, exposition
from tether.store import Store

_NO_STORE = {"Cache-Control": "no-store"}


def add_probes(app: Any, worker: Worker, store: Store) -> None:
    """Add the three routes to `app` (the SDK's Starlette app)."""
    check, counts = StoreCheck(store), QueueCounts(store)

    async def healthz(_: Request) -> Response:
        status, body = probe_answer("/healthz", worker.health())
        return JSONResponse(body, status, headers=_NO_STORE)

    async def readyz(_: Request) -> Response:
        status, body = probe_answer("/readyz", worker.health(),
                                    store_problem=await check.problem())
        return JSONResponse(body, status, headers=_NO_STORE)

    async def metrics(_: Request) -> Response:
        text = exposition(worker.health(), await run_in_threadpool(counts.get))
        return Response(text, media_type=CONTENT_TYPE, headers=_NO_STORE)

    for path, endpoint in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)):
        app.add_route(path, endpoint, methods=["GET"])
