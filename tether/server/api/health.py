"""`GET /healthz`, `GET /readyz` and `GET /metrics` of `tether serve`, for supervisors, load
balancers and Prometheus: no API key, no tenant's data (`tether.server.health` renders the
probes' answers, `tether.server.prometheus` the metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tether.server.health import StoreCheck, probe_answer
from tether.server.prometheus import CONTENT_TYPE, QueueCounts, exposition

from .state import state_of

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Live: answered by the server's event loop itself (a blocked loop does not answer: the
    probe's timeout is the verdict), with the embedded worker's stall, if any."""
    worker = state_of(request).worker
    status, body = probe_answer("/healthz", worker.health() if worker else None)
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready: the store answers a read (`StoreCheck`), and the embedded worker (if any)
    claims runs and renews its leases."""
    state = state_of(request)
    check: StoreCheck | None = getattr(request.app.state, "store_check", None)
    if check is None:
        check = request.app.state.store_check = StoreCheck(state.tether.store)
    worker = state.worker
    status, body = probe_answer("/readyz", worker.health() if worker else None,
                                store_problem=await check.problem())
    return JSONResponse(body, status, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus' text format: runs by status (the queue's depth) and the embedded worker's
    health (see `tether.server.prometheus`); no key, no tenant's data."""
    state = state_of(request)
    counts: QueueCounts | None = getattr(request.app.state, "queue_counts", None)
    if counts is None:
        counts = request.app.state.queue_counts = QueueCounts(state.tether.store)
    worker = state.worker
    text = exposition(worker.health() if worker else None, await run_in_threadpool(counts.get))
    return Response(text, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
