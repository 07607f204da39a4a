"""A run's events as server-sent events, resumable.

Each event's SSE `id` is its journal `seq`, so a client that lost the connection sends the last
id it saw as `Last-Event-ID` (browsers' EventSource does this itself) and gets exactly the
events after it: none lost, none twice. The data is the event's timeline row (the one view of a
journal; durations are computed over the whole journal, so a resumed stream shows the same rows
as an uninterrupted one). The stream ends with an `end` event once the run finished, or at once
with `follow=false`; while the run waits, a comment every 15 s keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tether.observe import TimelineBuilder, TimelineRow, clip_detail
from tether.server.keys import KeyLookup, Principal, Role

from .auth import Viewer
from .errors import COMMON, NOT_FOUND, ApiError, ErrorBody
from .runs import own_run
from .state import ServerState, commit, state_of
from .stream_limits import guarded

router = APIRouter(prefix="/v1", tags=["runs"], responses=COMMON)
_EVENT = {  # one frame of the stream
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["event", "end"]},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The journal seq."},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "A timeline row (event), or {run_id, status} (end)."},
        "retry": {"type": "integer"},
    },
}
_KEEPALIVE_S = 15.0
TOO_MANY: dict[int | str, dict[str, Any]] = {429: {
    "model": ErrorBody, "description": "The key holds its most open event streams."}}
_SEQ = re.compile(r"[ \t]*[0-9]{1,18}[ \t]*")


def _frame(seq: int | None, event: str, data: object) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _row(row: TimelineRow, clip: bool) -> dict[str, Any]:
    """A frame's data: the row whole (the API's stream is where a whole value is read), or,
    for a page that shows it, its detail cut as the run's detail view cuts it."""
    data = row.to_json()
    if clip:
        data["detail"] = clip_detail(data["detail"], "GET /v1/runs/{run_id}/events")
    return data


async def _events(state: ServerState, request: Request, run_id: str, after: int,
                  follow: bool, clip: bool, key: KeyWatch) -> AsyncIterator[bytes]:
    store = state.tether.store
    # a viewer reads no more than the model: the rows' PII masked (operators: as journaled)
    builder = TimelineBuilder(redact=not key.who.may(Role.operator))
    seen = 0
    quiet_since = time.monotonic()
    yield b"retry: 1000\n\n"
    while True:
        events = await run_in_threadpool(store.load_events, run_id, seen)
        for e in events:
            row = builder.row(e)  # every event feeds the builder: durations need the openers
            seen = e.seq
            if e.seq > after:
                yield _frame(e.seq, "event", _row(row, clip))
                quiet_since = time.monotonic()
        run = await run_in_threadpool(store.get_run, run_id)
        if run is not None and run.finished and follow:
            # the run may have finished after the read above: its last events commit with its
            # status, so one more read sends them before `end` (a stream never ends short)
            for e in await run_in_threadpool(store.load_events, run_id, seen):
                row = builder.row(e)
                seen = e.seq
                if e.seq > after:
                    yield _frame(e.seq, "event", _row(row, clip))
        if run is None or run.finished or not follow:
            status = run.status if run is not None else "gone"
            yield _frame(None, "end", {"run_id": run_id, "status": status})
            return
        if await request.is_disconnected():
            return
        if not await key.still_valid():  # revoked since the stream opened: nothing more
            yield b": the API key was revoked\n\n"
            return
        if time.monotonic() - quiet_since > _KEEPALIVE_S:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(state.config.sse_poll)


@router.get("/runs/{run_id}/events", response_class=StreamingResponse,
            responses={**NOT_FOUND, **TOO_MANY, 200: {
                "description": "Server-sent events: `event` frames (id = journal seq, data = "
                "a timeline row), then one `end` frame when the run finished.",
                "content": {"text/event-stream": {"schema": _EVENT}}}})
async def stream_events(
    run_id: str, request: Request, who: Viewer,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this seq (the "
                                       "Last-Event-ID header wins).")] = None,
    follow: Annotated[bool, Query(description="Keep streaming until the run finishes.")]
    = True,
) -> StreamingResponse:
    """Stream the run's journal events as they commit."""
    return await event_response(run_id, request, who, last_event_id=last_event_id,
                                after=after, follow=follow)


async def event_response(run_id: str, request: Request, who: Principal, *,
                         last_event_id: str | None, after: int | None, follow: bool,
                         clip: bool = False) -> StreamingResponse:
    """The stream of `stream_events`; `clip`: each row's detail cut at `FULL_DETAIL_MAX`
    characters (the web UI's run page, which shows it: a 3 MB log line was a 3 MB frame put
    whole into the page)."""
    state = state_of(request)
    await run_in_threadpool(own_run, state, who.tenant, run_id)
    start = after or 0
    if last_event_id is not None:
        # ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() refuses (a 500)
        if not _SEQ.fullmatch(last_event_id):
            raise ApiError(422, "invalid_request",
                           f"Last-Event-ID {last_event_id[:40]!r} is not an event seq (a "
                           "number of 1 to 18 digits)",
                           "Last-Event-ID header", "send the id of the last event received")
        start = int(last_event_id)
    slot = state.streams.take(who)  # 429 past the key's share of open streams
    events = _events(state, request, run_id, start, follow, clip,
                     KeyWatch(state, who, state.config.stream_key_recheck))
    return StreamingResponse(guarded(events, slot),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class KeyWatch:
    """Whether the key a stream was opened with is still valid, read at most every `every`
    seconds (the read goes through the server's shared transactions)."""

    def __init__(self, state: ServerState, who: Principal, every: float) -> None:
        self.state, self.who, self.every = state, who, every
        self.checked = time.monotonic()

    async def still_valid(self) -> bool:
        if time.monotonic() - self.checked < self.every:
            return True
        self.checked = time.monotonic()
        who = self.who
        rows = await commit(self.state, lambda tx: tx.api_keys(tenant=who.tenant))
        now = KeyLookup.principal([r for r in rows if r[0] == who.key_id])
        return now is not None and (now.tenant, now.role) == (who.tenant, who.role)
