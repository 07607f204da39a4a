"""One error shape for every failure: what went wrong, where, and what to do.

Nothing else reaches a client: Tether's own errors map to statuses here, a request the schema
refuses names the field, and anything unexpected is logged on the server and answered with a
generic 500 that carries no stack trace and no internal detail.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tether.guards.errors import ApprovalError, KeyFormatError
from tether.runtime import (
    AgentNotFound,
    InvalidInput,
    RunFinished,
    RunNotDeletable,
    RunNotFound,
    TetherError,
)
from tether.runtime.errors import NotInDoubt
from tether.store import JournalCorrupt, StoreError, StoreLocked, StoreUnavailable

log = logging.getLogger("tether.server")


class ErrorBody(BaseModel):
    error: str  # a stable code: not_found, forbidden, invalid_request, conflict, ...
    message: str  # what went wrong
    where: str  # the part of the request it concerns
    fix: str  # what to do about it


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, where: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.where, self.fix = (
            status, code, message, where, fix)

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = ErrorBody(error=self.code, message=self.message, where=self.where, fix=self.fix)
        return JSONResponse(body.model_dump(), status_code=self.status, headers=headers)


def not_found(what: str, where: str) -> ApiError:
    """Also the answer for another tenant's objects: the same words, so nothing leaks."""
    return ApiError(404, "not_found", f"no {what} here", where,
                    "check the id; list what your key can see with GET /v1/runs or "
                    "GET /v1/approvals")


def _responses(codes: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody} for c in codes}


#: error statuses every authenticated route may answer
COMMON = _responses((400, 401, 403, 413, 415, 422, 503))
NOT_FOUND = _responses((404,))
CONFLICT = _responses((409,))


def from_tether(exc: Exception, where: str) -> ApiError:
    """The status and advice for an error the library raised while serving a request."""
    if isinstance(exc, RunNotFound):
        return not_found("such run", where)
    if isinstance(exc, (RunFinished, NotInDoubt)):
        return ApiError(409, "conflict", str(exc), where,
                        "look at the run's state (GET /v1/runs/{run_id}) before acting on it")
    if isinstance(exc, RunNotDeletable):
        return ApiError(409, "conflict", str(exc), where,
                        "delete the root of a finished tree: cancel it first "
                        "(POST /v1/runs/{run_id}/cancel) or wait for it to end")
    if isinstance(exc, KeyFormatError):
        return ApiError(422, "invalid_request", str(exc), where, "send a well-formed decision")
    if isinstance(exc, ApprovalError):
        return ApiError(409, "decision_refused", str(exc), where,
                        "check the approval id, sign with your own registered key, and use a "
                        "fresh nonce; a second approval must come from another approver")
    if isinstance(exc, (InvalidInput, AgentNotFound)):
        return ApiError(422, "invalid_request", str(exc), where, "correct the request")
    if isinstance(exc, StoreLocked):
        return ApiError(503, "busy", "the database is busy", where, "retry in a moment")
    if isinstance(exc, JournalCorrupt):  # the operator's to repair; the client is told whose
        return ApiError(500, "corrupt_record",
                        f"the record of run {exc.run_id} cannot be read: the database was "
                        "changed outside Tether", where,
                        "ask the server's operator to repair or restore it (its log names the "
                        "row); other runs are not affected")
    if isinstance(exc, StoreUnavailable):  # a full disk, a server away: nothing was written
        return ApiError(503, "unavailable", f"the database cannot take this now: {exc}", where,
                        "retry later; runs already executing wait for the database and go on")
    raise exc


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return exc.response(headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        not_json = _not_json(request, first)
        if not_json is not None:
            return not_json.response()
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors[:5])
        return ApiError(422, "invalid_request", message or "invalid request", where,
                        "correct the request as the OpenAPI description at /openapi.json says"
                        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            err = ApiError(400, "invalid_request", "the body could not be parsed as JSON "
                           "(malformed, or nested too deeply)", "body",
                           "send one JSON object, as the OpenAPI description at /openapi.json "
                           "says")
        elif exc.status_code == 404:
            err = ApiError(404, "not_found", "no such endpoint", "path",
                           "see /openapi.json for the endpoints (all under /v1)")
        elif exc.status_code == 405:
            err = ApiError(405, "method_not_allowed", str(exc.detail), "method",
                           "see /openapi.json for the methods each endpoint accepts")
        else:
            err = ApiError(exc.status_code, "http_error", str(exc.detail), "request",
                           "see /openapi.json")
        return err.response(dict(exc.headers or {}))

    @app.exception_handler(TetherError)
    async def tether_error(request: Request, exc: TetherError) -> JSONResponse:
        try:
            return from_tether(exc, request.url.path).response()
        except TetherError:
            return _internal(request, exc)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, JournalCorrupt):  # which row, for the operator (not the client)
            log.error("%s %s: %s", request.method, request.url.path, exc)
        try:
            return from_tether(exc, request.url.path).response()
        except StoreError:
            return _internal(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _not_json(request: Request, first: Any) -> ApiError | None:
    """A body sent as another media type than JSON is not parsed at all, and pydantic's word
    for that ("Input should be a valid dictionary or object") names no cause: say which
    Content-Type came and which one is needed."""
    if tuple(first.get("loc", ())) != ("body",) or first.get("type") not in (
            "model_attributes_type", "dict_type"):
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    said = f"Content-Type {media[:60]!r}" if media else "no Content-Type"
    return ApiError(415, "unsupported_media_type",
                    f"the body must be JSON, and the request has {said}", "Content-Type header",
                    "send the body as JSON with 'Content-Type: application/json'")


def _internal(request: Request, exc: BaseException) -> JSONResponse:
    log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "internal", "the server failed to handle this request",
                    f"{request.method} {request.url.path}",
                    "retry later; the server's log has the details for its operator"
                    ).response()
