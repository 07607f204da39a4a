"""A stdio transport for MCP servers that bounds what one server line may cost.

The SDK's `stdio_client` reads the server's stdout into one growing string until a newline
(``buffer + chunk`` per chunk: quadratic), so a server that writes a 100 MB result takes
minutes of CPU and hundreds of MB to read, and one that writes without ever ending its line
holds the session forever while memory grows without bound; every later call of that server
times out behind it. This transport is the SDK's (same process start, environment, shutdown
sequence and process-tree kill, from `mcp.client.stdio`, pinned in pyproject.toml) with a
different reader: bytes are split on newlines in linear time, and a line longer than
``max_line`` bytes ends the session at once — the reader stops buffering, tells its owner why
(``on_violation``), discards the rest of the output and closes the session's read stream, so
the calls in flight fail now with that reason instead of waiting out their timeout. The owner
then stops the server; the next call starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from mcp import StdioServerParameters
    from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)


def _parse(line: bytes) -> SessionMessage | Exception:
    """One line as a message, or the parse error as a value (the session logs it), as the
    SDK does; bytes that are not UTF-8 are a parse error too, not a crashed reader."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        logger.warning("an MCP server wrote a line that is not a JSON-RPC message: %s", exc)
        return exc


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters, errlog: TextIO, *, max_line: int,
    on_violation: Callable[[str], None],
) -> AsyncIterator[tuple[anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
                         anyio.abc.ObjectSendStream[SessionMessage]]]:
    """The SDK's ``stdio_client(server, errlog)`` with a bounded, linear-time reader."""
    from mcp.client import stdio as sdk
    from mcp.shared.message import SessionMessage

    command = await sdk._get_executable_command(server.command)
    process = await sdk._create_platform_compatible_process(
        command=command, args=server.args,
        env=sdk.get_default_environment() | (server.env or {}), errlog=errlog, cwd=server.cwd)

    # as in the SDK: no await between the spawn and the task group, or a cancellation in the
    # gap would leak the live process
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    shutting_down = False
    writer_done = anyio.Event()

    async def pump() -> None:
        """Deliver whole lines until the output ends, a line is too long or the session left."""
        assert process.stdout is not None
        buffer = bytearray()
        while True:
            try:
                chunk = await process.stdout.receive()
            except anyio.EndOfStream:
                return
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                buffer += memoryview(chunk)[start:end]
                start = end + 1
                if len(buffer) > max_line:
                    break
                line, buffer = bytes(buffer), bytearray()
                if line.strip():
                    await read_writer.send(_parse(line))
            else:
                buffer += memoryview(chunk)[start:]
            if len(buffer) > max_line:
                on_violation(f"it wrote a message longer than {max_line:,} bytes "
                             "(max_message_bytes), which Tether does not read")
                return

    async def stdout_reader() -> None:
        try:
            try:
                async with read_writer:
                    await pump()
            finally:  # the session's end is seen first; then the server must not block writing
                await sdk._drain_stdout(process)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the session is gone, or our own shutdown closed the pipe under the read
        except ConnectionError:
            if not shutting_down:
                logger.exception("Reading from the MCP server's stdout failed mid-session")

    async def stdin_writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((data + "\n").encode(server.encoding,
                                                                  server.encoding_error_handler))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()  # the server stopped reading: end the session
        finally:
            writer_done.set()

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(sdk._WRITER_FLUSH_TIMEOUT) as flush_scope:
            await writer_done.wait()
        if flush_scope.cancelled_caught:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        await sdk._stop_server_process(process)
        await sdk._aclose_all(read_stream, write_stream, read_writer, write_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            shutting_down = True
            with anyio.CancelScope(shield=True):  # every wait inside is bounded (the SDK's)
                await shutdown()
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()
