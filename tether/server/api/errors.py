"""One error shape for every failure: what went wrong, where, and what to do.

Nothing else reaches a client: Tether's own errors map to statuses here, a request the schema
refuses names the field, and anything unexpected is logged on the server and answered with a
generic 500 that carries no stack trace and no internal detail.

The library's messages are written for its other callers — a command to type, a flag, a Python
call — and a REST client can act on none of those: `from_tether` passes each through
`api_words`, which says the same in the API's terms (a body field, a route).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Mapping
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


def not_found(what: str, where: str, fix: str | None = None) -> ApiError:
    """Also the answer for another tenant's objects: the same words, so nothing leaks."""
    return ApiError(404, "not_found", f"no {what} here", where,
                    fix or "check the id; list what your key can see with GET /v1/runs or "
                    "GET /v1/approvals")


#: agents an unknown-agent answer names at most (a catalogue can be long)
_NAMED_AGENTS = 20


def unknown_agent(name: str, known: Iterable[str]) -> ApiError:
    """A submit for an agent the catalogue does not have. The catalogue is the deployment's,
    the same for every tenant, and any key reads it (GET /v1/agents, and /openapi.json lists
    the names): naming its agents tells nobody anything new, and it is the caller's next step
    — the runs and approvals lists (`not_found`'s usual advice) hold no agent names."""
    names = sorted(known)
    guess = difflib.get_close_matches(name, names, n=1)
    listed = ", ".join(repr(n) for n in names[:_NAMED_AGENTS])
    more = f" and {len(names) - _NAMED_AGENTS} more" if len(names) > _NAMED_AGENTS else ""
    offer = (f"submit one of the agents this server runs: {listed}{more} (GET /v1/agents "
             "describes each)" if names else "this server offers no agents: ask its operator")
    return not_found(f"agent named {name!r}", "body.agent",
                     (f"did you mean {guess[0]!r}? " if guess else "") + offer)


#: the library's advice to its CLI and Python callers -> the same advice through the API
_API_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words) for pattern, words in (
        (r"\. Pass one \(`--input JSON` on the command line, `submit\(agent, input\)` in "
         r"Python\), or give the parameter a default", ', and the body has no "input"'),
        (r"run '(?P<id>[^']+)'(?P<why>.*); `tether show` lists its steps",
         r"run '\g<id>'\g<why>; GET /v1/runs/\g<id> lists its steps"),
        (r"\(`tether cancel (?P<id>[^`]+)`\)", r"(POST /v1/runs/\g<id>/cancel)"),
        (r"list them with `tether approvals`", "list them with GET /v1/approvals"),
        (r"the deployment's approvers file \(GuardConfig\.approvers\)",
         "the server's approvers file"),
    ))

#: the fix for a request the library refused, by the part of the request it concerns
_FIX_AT = {"body.input": 'send the agent\'s input as "input" in the body: the JSON value it '
                        "takes (GET /v1/agents describes each agent)"}


def api_words(text: str, names: Mapping[str, str] | None = None) -> str:
    """`text`, a library message, as the API says it: its CLI and Python advice replaced
    (`_API_WORDS`), and each key of `names` (an agent's reference, say) as the caller knows
    it (the catalogue name it submitted)."""
    for theirs, ours in (names or {}).items():
        text = text.replace(repr(theirs), repr(ours))
    for pattern, words in _API_WORDS:
        text = pattern.sub(words, text)
    return text


def _responses(codes: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody} for c in codes}


#: error statuses every authenticated route may answer
COMMON = _responses((400, 401, 403, 413, 415, 422, 503))
NOT_FOUND = _responses((404,))
CONFLICT = _responses((409,))


def from_tether(exc: Exception, where: str, names: Mapping[str, str] | None = None
                ) -> ApiError:
    """The status and advice for an error the library raised while serving a request; its
    message in the API's words (`api_words`, with `names`)."""
    said = api_words(str(exc), names)
    if isinstance(exc, RunNotFound):
        return not_found("such run", where)
    if isinstance(exc, (RunFinished, NotInDoubt)):
        return ApiError(409, "conflict", said, where,
                        "look at the run's state (GET /v1/runs/{run_id}) before acting on it")
    if isinstance(exc, RunNotDeletable):
        return ApiError(409, "conflict", said, where,
                        "delete the root of a finished tree: cancel it first "
                        "(POST /v1/runs/{run_id}/cancel) or wait for it to end")
    if isinstance(exc, KeyFormatError):
        return ApiError(422, "invalid_request", said, where, "send a well-formed decision")
    if isinstance(exc, ApprovalError):
        return ApiError(409, "decision_refused", said, where,
                        "check the approval id, sign with your own registered key, and use a "
                        "fresh nonce; a second approval must come from another approver")
    if isinstance(exc, (InvalidInput, AgentNotFound)):
        return ApiError(422, "invalid_request", said, where,
                        _FIX_AT.get(where, "correct the request"))
    if isinstance(exc, StoreLocked):
        return ApiError(503, "busy", "the database is busy", where, "retry in a moment")
    if isinstance(exc, JournalCorrupt):  # the operator's to repair; the client is told whose
        return ApiError(500, "corrupt_record",
                        f"the record of run {exc.run_id} cannot be read: the database was "
                        "changed outside Tether", where,
                        "ask the server's operator to repair or restore it (its log names the "
                        "row); other runs are not affected")
    if isinstance(exc, StoreUnavailable):  # a full disk, a server away: nothing was written
        return ApiError(503, "unavailable", f"the database cannot take this now: {said}", where,
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
        not_json = _not_json(request, first) or _bad_json(exc, first)
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


def _bad_json(exc: RequestValidationError, first: Any) -> ApiError | None:
    """A body that does not parse: FastAPI's words for it ("body.28: JSON decode error") say
    neither what is wrong nor where a person looks (a line and a column); json's reason and
    its place do. The structured `where` (`body.<character>`) stays as it was."""
    if first.get("type") != "json_invalid":
        return None
    loc = tuple(first.get("loc", ()))
    pos = loc[1] if len(loc) == 2 and isinstance(loc[1], int) else None
    reason = str((first.get("ctx") or {}).get("error") or "it cannot be parsed")
    reason = reason[:1].lower() + reason[1:]
    doc = exc.body if isinstance(exc.body, str) else None
    if pos is None:
        at = ""
    elif doc is None or pos > len(doc):
        at = f" at character {pos}"
    else:  # as json counts them: lines and columns from 1
        line, column = doc.count("\n", 0, pos) + 1, pos - doc.rfind("\n", 0, pos)
        at = f" at line {line} column {column} (character {pos})"
    return ApiError(422, "invalid_request", f"the request body is not valid JSON: {reason}{at}",
                    ".".join(str(p) for p in loc) or "body",
                    "correct the JSON there: the body is one JSON object, as the OpenAPI "
                    "description at /openapi.json says")


def _internal(request: Request, exc: BaseException) -> JSONResponse:
    log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "internal", "the server failed to handle this request",
                    f"{request.method} {request.url.path}",
                    "retry later; the server's log has the details for its operator"
                    ).response()
