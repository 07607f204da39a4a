"""The stdio transport, answering every line it cannot read instead of dropping it.

The SDK's stdio reader (2.3) hands a line it cannot validate — malformed JSON, JSON nested deeper
than its parser's limit, a batch array, an object that is no JSON-RPC message — to the
dispatcher as an exception, which only logs it. The client gets no answer: one that sent a
request with an id (a `tools/call` whose arguments nest 400 deep) waits for it forever. Over
streamable HTTP the SDK answers such a body with a JSON-RPC error; here the same is done for a
line: `-32700` (parse error) with a null id when the line is no JSON, as JSON-RPC 2.0 asks, and
`-32600` (invalid request) otherwise — with the request's id when the SDK's parser refused only
the line's depth and a plain JSON reader finds its id, else a null id (the SDK keeps only the
part of the message it refused, so the id is not known).

The SDK's transport reads each line and writes each answer through anyio's file wrappers: three
hand-offs to a thread per call (read, write, flush), each with a turn of the event loop of its
own. Here the same descriptors (claimed as the SDK claims them: fd 0 and 1 diverted while
serving) are read and written on two threads of the server's own: two plain hand-offs per call,
an answer written and flushed in one.

The reader also reads ahead without bound: every request starts a handler at once, answered or
not, so a client that writes requests without reading the answers grew the server by ~10 KB a
request (20,000 unread pings: 99 -> 296 MB). At most `MAX_IN_FLIGHT` requests of the client are
unanswered at a time; one more is answered at once with `TOO_MANY_REQUESTS` instead of being
started, and answers the client does not read stop the reading (the pipe fills), which bounds
the rest. Refusing rather than waiting keeps the client's own answers and cancellations flowing
(a call may wait for an elicitation reply the client sends later on the same stream).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast

import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import (  # the SDK's claim of fd 0 and 1 (mcp is pinned)
    _claim_fd,
    _open_stdin_diversion,
    _open_stdout_diversion,
    _UnownedTextWrapper,
    stdio_server,
)
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)
from pydantic import ValidationError

from tether.tools._threads import Threads

_DETAIL_MAX = 300  # characters of the reader's explanation echoed to the client
#: the client's requests that may be unanswered at a time (calls waiting for approvals included)
MAX_IN_FLIGHT = 256
#: a server error (JSON-RPC's -32000..-32099 range, unused by MCP): too many unanswered requests
TOO_MANY_REQUESTS = -32029


async def serve(lowlevel: Server[Any]) -> None:
    """Serve `lowlevel` (the SDK's low-level `Server`) on stdin/stdout until stdin closes."""
    # threads of this serve's own (one blocks in a read until the client writes): a serve that
    # is cancelled leaves its read blocked on stdin — it takes the next line written there and
    # drops it — and must not leave a later serve without a thread to write its answers on
    with _claimed_stdio(Threads(limit=2, name="tether-stdio")) as (lines, out):
        async with stdio_server(cast(Any, lines), cast(Any, out)) as (read, stdout):
            write = _Answers(stdout)
            await lowlevel.run(_Admitted(read, write), write,
                               lowlevel.create_initialization_options())



@contextlib.contextmanager
def _claimed_stdio(threads: Threads) -> Iterator[tuple[_Lines, _Out]]:
    """stdin and stdout claimed as the SDK's `stdio_server()` claims them when given none (fd
    0 and 1 diverted while serving, so a tool's stray print misses the wire; restored after;
    a second claim in the process refused), as the streams it reads and writes."""
    stdin, restore_stdin = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
    try:
        stdout, restore_stdout = _claim_fd(1, sys.stdout, "wb", _open_stdout_diversion)
        try:
            yield (_Lines(_UnownedTextWrapper(stdin, encoding="utf-8", errors="replace"),
                          threads),
                   _Out(_UnownedTextWrapper(stdout, encoding="utf-8"), threads))
        finally:
            if restore_stdout is not None:
                restore_stdout()
    finally:
        if restore_stdin is not None:
            restore_stdin()


class _Lines:
    """stdin as the SDK's reader iterates it (`async for line in stdin`), a line a read."""

    def __init__(self, text: TextIO, threads: Threads) -> None:
        self.text = text
        self.threads = threads

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line: str = await self.threads.run(self.text.readline)
        if not line:
            raise StopAsyncIteration
        return line


class _Out:
    """stdout as the SDK's writer uses it (`write`, then `flush`): written and flushed in one
    hand-off to a thread."""

    def __init__(self, text: TextIO, threads: Threads) -> None:
        self.text = text
        self.threads = threads

    async def write(self, data: str) -> None:
        await self.threads.run(self._write, data)

    async def flush(self) -> None:
        """Nothing left to do: `write` flushed what it wrote."""

    def _write(self, data: str) -> None:
        self.text.write(data)
        self.text.flush()


class _Admitted:
    """The reader's stream as the server reads it: a line it refused, or a request over the
    limit, is answered here and skipped. A filter in the reading call, not a task and a stream
    of its own in between: that hand-off cost every message a switch (stdio CPU per call +5%
    in `make bench-mcp`)."""

    def __init__(self, inner: Any, write: _Answers) -> None:
        self.inner = inner
        self.write = write

    @property
    def last_context(self) -> Any:  # the sender's context, for the SDK's dispatcher
        return getattr(self.inner, "last_context", None)

    async def receive(self) -> SessionMessage:
        while True:
            item = await self.inner.receive()
            if isinstance(item, Exception):
                await self.write.send(SessionMessage(rejection(item)))
            elif (refusal := self.write.admit(item.message)) is not None:
                await self.write.send(SessionMessage(refusal))
            else:
                return item

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __aiter__(self) -> _Admitted:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:  # as the SDK's own stream ends an iteration
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Admitted:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def rejection(exc: Exception) -> JSONRPCError:
    """The JSON-RPC error answering a line the SDK's reader refused with `exc`."""
    raw: Any = None
    detail = str(exc)
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        raw, detail = first.get("input"), str(first.get("msg", detail))
    detail = detail[:_DETAIL_MAX]
    message: Any = raw
    if isinstance(raw, str | bytes | bytearray):
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
                code=PARSE_ERROR, message=f"Parse error: {detail}"))
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        request_id = None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(
        code=INVALID_REQUEST, message=f"Invalid request: the server's JSON-RPC reader refused "
        f"this message ({detail}); send one JSON-RPC object per line, nested fewer than 200 "
        "levels deep"))


class _Answers:
    """The server's side of stdout, which knows which of the client's requests are unanswered:
    a request is counted when read and forgotten when its answer is written or the client
    cancels it (a cancelled request is never answered)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.unanswered: set[str | int] = set()

    def admit(self, message: Any) -> JSONRPCError | None:
        """None to start `message`; the answer refusing it when too many requests wait."""
        if isinstance(message, JSONRPCNotification) and \
                message.method == "notifications/cancelled":
            self.unanswered.discard((message.params or {}).get("requestId"))
        if not isinstance(message, JSONRPCRequest):
            return None
        if len(self.unanswered) >= MAX_IN_FLIGHT and message.id not in self.unanswered:
            return JSONRPCError(jsonrpc="2.0", id=message.id, error=ErrorData(
                code=TOO_MANY_REQUESTS, message=(
                    f"too many requests in flight: {MAX_IN_FLIGHT} of this client's requests "
                    f"are unanswered; read their answers (or cancel some) before sending more "
                    f"({message.method} was not started)")))
        self.unanswered.add(message.id)
        return None

    async def send(self, item: SessionMessage) -> None:
        await self.inner.send(item)
        if isinstance(item.message, JSONRPCResponse | JSONRPCError) and item.message.id is not None:
            self.unanswered.discard(item.message.id)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> _Answers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
