"""One connection to one MCP server, kept by a supervisor task its owner started.

The SDK's `Client` is an async context manager whose exit must run in the task that entered it
(anyio cancel scopes). Tool calls come from whatever task runs the agent, so the connection is
held open by one supervisor task, a child of the owner's task group (`MCPTools`): the owner's
exit cancels it, which closes the session and ends a stdio server's process. No connection
outlives its owner, and callers in any task only send requests over it.

A server that died is reconnected on the next call (a stdio server is started again); one that
cannot be reached makes the call fail with `MCPUnavailableError`, a message the model reads.

The server is not trusted: every text of its that reaches an error message (a refusal, an
unreadable result) is cut to ``max_output_chars``, as results are, and no message of its is
read past ``max_message_bytes``: a stdio server writing a longer line is stopped by the bounded
transport (`_stdio`) and the calls in flight fail saying so; over HTTP, a longer JSON answer
fails its call (`_bounding_hook`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from anyio.abc import TaskStatus

from tether.tools._errors import ToolExecutionError
from tether.tools.mcp._config import MCPServerConfig
from tether.tools.mcp._stdio import bounded_stdio_client

if TYPE_CHECKING:
    from mcp import Client

_STDERR_TAIL = 400


class MCPUnavailableError(ToolExecutionError):
    """The MCP server cannot be reached: its tools are unavailable (the run goes on)."""

    kind = "unavailable"

    def __init__(self, tool: str, server: str, reason: str) -> None:
        self.reason = reason  # for the server's operator: the message is the model's
        super().__init__(
            tool,
            f"{server} is unavailable, so tool {tool!r} cannot be called now ({reason}). "
            "Nothing was sent to the server. Continue without this tool or report that it is "
            "unavailable.",
        )


def describe(exc: BaseException) -> str:
    """The innermost useful message of an error (anyio wraps transport failures in groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        return describe(cause)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class MCPConnection:
    """A server's session, opened and reopened by :meth:`supervise` (run it in a task group)."""

    def __init__(self, config: MCPServerConfig, *, connect_timeout: float = 30.0) -> None:
        self.config = config
        self.connect_timeout = connect_timeout
        self._client: Client | None = None
        self._error: str | None = None
        self._closed = False
        self._requested = 0  # connection requests made by callers
        self._answered = 0  # the last request a finished connection attempt answered
        self._stderr_start = 0  # where this session's stderr begins in the log file
        self._want = anyio.Event()  # a caller asks for a (re)connection
        self._drop = anyio.Event()  # a caller saw the session break
        self._changed = anyio.Event()
        self._stderr: TextIO | None = None
        self._stderr_path = ""
        #: how the current session's server broke the protocol (it was stopped for it)
        self._violation: str | None = None

    # -- the supervisor ---------------------------------------------------------------------

    async def supervise(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                        ) -> None:
        """Connect when asked, hold the session until it breaks or the owner leaves, repeat."""
        task_status.started()
        try:
            while True:
                await self._want.wait()
                self._want = anyio.Event()
                serving = self._requested
                try:
                    async with self._new_client() as client:
                        self._connected(client, serving)
                        await self._drop.wait()
                except Exception as e:  # the session broke or never opened: say why, go on
                    self._error = self._reason(e)
                finally:
                    self._client = None
                    self._drop = anyio.Event()
                    self._answer(serving)
        finally:
            self._closed = True
            self._client = None
            self._answer(self._requested)  # wake callers waiting for a connection: none comes
            if self._stderr is not None:
                self._stderr.close()
                os.unlink(self._stderr_path)
                self._stderr = None

    def _connected(self, client: Client, serving: int) -> None:
        self._client = client
        self._error = None
        self._violation = None
        self._answer(serving)

    def _violated(self, reason: str) -> None:
        """The transport found the server breaking the protocol: drop the session (the calls
        in flight fail with ``reason``; the next call starts the server again)."""
        self._violation = reason
        self._error = reason
        self._client = None
        self._drop.set()

    def _answer(self, serving: int) -> None:
        self._answered = max(self._answered, serving)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    @asynccontextmanager
    async def _new_client(self) -> AsyncIterator[Client]:
        from mcp import Client, StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client

        cfg = self.config
        options: dict[str, Any] = {"read_timeout_seconds": cfg.timeout, "mode": cfg.protocol,
                                   **cfg.callbacks}
        if cfg.url is not None:
            import httpx2  # the SDK's HTTP client

            # the SDK's own timeouts (a response stream may stay open for minutes); its client
            # would read a JSON response whole, however long: this transport bounds it
            timeout = httpx2.Timeout(30.0, read=300.0)
            bounded = _bounding_hook(cfg.max_message_bytes)
            async with httpx2.AsyncClient(headers=cfg.headers, auth=cfg.auth, timeout=timeout,
                                          event_hooks={"response": [bounded]}) as http, Client(
                streamable_http_client(cfg.url, http_client=http), **options
            ) as client:
                yield client
            return
        if self._stderr is None:
            # the server's stderr goes to a file: its last lines explain a crash to the model
            fd, self._stderr_path = tempfile.mkstemp(prefix=f"tether-mcp-{cfg.name}-",
                                                     suffix=".log")
            self._stderr = open(fd, "w", encoding="utf-8")  # noqa: SIM115 - supervise closes it
        self._stderr.flush()
        self._stderr_start = os.path.getsize(self._stderr_path)
        params = StdioServerParameters(command=cfg.command[0], args=list(cfg.command[1:]),
                                       env=cfg.env or None, cwd=cfg.cwd)
        transport = bounded_stdio_client(params, self._stderr, max_line=cfg.max_message_bytes,
                                         on_violation=self._violated)
        async with Client(transport, **options) as client:
            yield client

    def _reason(self, exc: BaseException) -> str:
        reason = describe(exc)
        tail = self.stderr_tail()
        return f"{reason}; its stderr ends with: {tail}" if tail else reason

    def stderr_tail(self) -> str:
        """The last lines a stdio server wrote to stderr (why it died, often)."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            with open(self._stderr_path, "rb") as fh:
                fh.seek(self._stderr_start)
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = (" ".join(line.split()) for line in text.strip().splitlines())
        return " | ".join(line for line in lines if line)[-_STDERR_TAIL:]

    # -- callers ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def error(self) -> str | None:
        """Why the last connection attempt failed or the session broke (``None``: it did not)."""
        return self._error

    async def client(self, tool: str = "*") -> Client:
        """The live session, connecting (again) first if there is none.

        Raises :class:`MCPUnavailableError` (for ``tool``) when the server cannot be reached.
        """
        if self._client is not None:
            return self._client
        if self._closed:
            raise MCPUnavailableError(tool, self.config.label,
                                      "its connection was closed with its owner")
        self._requested += 1
        mine = self._requested
        self._want.set()
        with anyio.move_on_after(self.connect_timeout):
            while self._answered < mine and self._client is None:
                await self._changed.wait()
        if self._client is None:
            reason = ("its connection was closed with its owner" if self._closed else
                      self._error or f"no connection within {self.connect_timeout:g}s")
            raise MCPUnavailableError(tool, self.config.label, reason)
        return self._client

    def broken(self, client: Client) -> None:
        """A call found the session ``client`` broken: drop it; the next call reconnects."""
        if self._client is client:
            self._client = None
            self._drop.set()

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """``tools/call`` on the live session; a transport failure drops the session and raises
        :class:`ToolExecutionError` saying the call may or may not have run."""
        from mcp import MCPError

        client = await self.client(tool)
        try:
            return await client.call_tool(tool, arguments,
                                          read_timeout_seconds=self.config.timeout)
        except MCPError as e:
            if _connection_lost(e):
                return self._lost(client, tool, e)
            if _timed_out(e):
                raise self._timeout(tool) from None
            if getattr(e, "code", None) == _PARSE_ERROR:  # the client could not read the answer
                raise self._unusable(tool, e) from None
            raise ToolExecutionError(tool, f"{self.config.label} refused the call to {tool!r}: "
                                     f"{self.clip(str(e))}") from None
        except TimeoutError:
            raise self._timeout(tool) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream,
                OSError) as e:
            return self._lost(client, tool, e)
        except Exception as e:
            if _is_transport_error(e):
                return self._lost(client, tool, e)
            # the server answered, but not with a result of the protocol (a malformed result,
            # structured content against its own outputSchema): the SDK's error names neither
            # the server nor what to do, and may quote the whole answer
            raise self._unusable(tool, e) from None

    def _unusable(self, tool: str, exc: Exception) -> ToolExecutionError:
        return ToolExecutionError(
            tool, f"{self.config.label} answered the call to {tool!r} with a result that "
            f"breaks the MCP protocol, so Tether cannot use it ({self.clip(describe(exc))}). "
            "The call may have taken effect, so it was not sent again; treat this tool as "
            "broken.")

    def clip(self, text: str) -> str:
        """A server's text cut to ``max_output_chars``, with a note saying so (it goes into an
        error message, the model's context and the journal)."""
        limit = self.config.max_output_chars
        if len(text) <= limit:
            return text
        return (text[:limit] + f" [... cut: {len(text)} characters; Tether keeps {limit} "
                "(max_output_chars)]")

    def _timeout(self, tool: str) -> ToolExecutionError:
        return ToolExecutionError(
            tool, f"{self.config.label} did not answer the call to {tool!r} within "
            f"{self.config.timeout:g}s; it may still be running, so it was not sent again")

    def _lost(self, client: Client, tool: str, exc: BaseException) -> Any:
        self.broken(client)
        if self._violation is not None:
            raise ToolExecutionError(
                tool, f"{self.config.label} broke the protocol during the call to {tool!r}: "
                f"{self._violation}. It was stopped; the call may or may not have taken effect. "
                "Its tools start it again on the next call.") from None
        raise ToolExecutionError(
            tool,
            f"{self.config.label} went away during the call to {tool!r} "
            f"({self.clip(describe(exc))}); the call may or may not have taken effect. "
            "Its tools reconnect on the next call.",
        ) from None


_PARSE_ERROR = -32700  # JSON-RPC: what the SDK's HTTP transport answers for a body it cannot read


def _bounding_hook(limit: int) -> Any:
    """An ``httpx2`` response hook that makes a non-streaming body (a JSON answer) stop at
    ``limit`` bytes: the SDK reads such a body whole before parsing it, so a server answering
    100 MB would have it all in memory. An event stream is left alone (the SDK bounds each
    event). Past the limit the body raises ``httpx2.StreamError``, which the SDK turns into a
    parse error of that one request. A hook, not a transport: it applies whichever transport
    answers (a proxy's, from the environment, included). (Built here: importing this module
    must not load httpx2.)"""
    import httpx2

    class LimitedBody(httpx2.AsyncByteStream):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self.inner:
                seen += len(chunk)
                if seen > limit:
                    raise httpx2.StreamError(
                        f"the server's response is longer than {limit:,} bytes "
                        "(max_message_bytes), which Tether does not read")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def bound(response: httpx2.Response) -> None:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.stream = LimitedBody(response.stream)

    return bound


def _connection_lost(exc: Exception) -> bool:
    from mcp_types import CONNECTION_CLOSED

    return getattr(exc, "code", None) == CONNECTION_CLOSED


def _timed_out(exc: Exception) -> bool:
    from mcp_types import REQUEST_TIMEOUT

    return getattr(exc, "code", None) == REQUEST_TIMEOUT


def _is_transport_error(exc: BaseException) -> bool:
    import httpx2

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return isinstance(exc, httpx2.TransportError | anyio.ClosedResourceError |
                      anyio.BrokenResourceError | anyio.EndOfStream)
