"""`GET /healthz` and `GET /readyz` of `tether serve`, for supervisors and load balancers:
no API key, no tenant's data (see `tether.server.health`, which renders both answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tether.server.health import StoreCheck, probe_answer

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
