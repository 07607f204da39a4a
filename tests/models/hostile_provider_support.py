"""A real HTTP/1.1 server on 127.0.0.1 that plays a hostile or broken model provider.

It is a test double of the provider's *network API* only (raw bytes over a loopback socket), so
Tether's own HTTP client, parsing, wrappers and error paths all run for real. Each request is
answered by a `Reply`: a status, headers and a list of body pieces, each optionally preceded by a
pause, so a test can send truncated bodies, never-ending streams or one byte per second.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REASONS = {200: "OK", 302: "Found", 401: "Unauthorized", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Reply:
    """What the server sends for one request. `pieces` are (pause before, bytes) pairs; with
    `length=False` no Content-Length is sent and the body ends when the connection closes (or
    never, with `hang=True`)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    pieces: list[tuple[float, bytes]] = field(default_factory=list)
    length: bool = True
    hang: bool = False

    @classmethod
    def json(cls, body: Any, status: int = 200, **headers: str) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return cls(status=status, headers={"content-type": "application/json", **headers},
                   pieces=[(0.0, raw)])

    @classmethod
    def sse(cls, events: list[bytes], *, hang: bool = False, pause: float = 0.0) -> Reply:
        return cls(headers={"content-type": "text/event-stream"},
                   pieces=[(pause, e) for e in events], length=False, hang=hang)


Handler = Callable[[int, bytes], Reply]


class HostileServer:
    """`async with HostileServer(handler) as srv:` serves `handler(request_number, body)`.

    `srv.requests` holds every request (head and body) so a test can check what Tether sent.
    """

    def __init__(self, handler: Handler | Reply) -> None:
        self._handler = handler
        self.requests: list[tuple[bytes, bytes]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                size = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        size = int(line.split(b":", 1)[1])
                body = await reader.readexactly(size) if size else b""
                self.requests.append((head, body))
                handler = self._handler
                reply = handler if isinstance(handler, Reply) else handler(len(self.requests), body)
                if not await self._send(writer, reply):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        """Write one reply; True if the connection may carry another request."""
        headers = dict(reply.headers)
        if reply.length:
            headers["content-length"] = str(sum(len(p) for _, p in reply.pieces))
        else:
            headers["connection"] = "close"
        status = f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'X')}\r\n"
        head = status + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        await writer.drain()
        for pause, piece in reply.pieces:
            if pause:
                await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()
        if reply.hang:
            await asyncio.Event().wait()  # cancelled when the server closes
        return reply.length


def chat_reply(message: dict[str, Any] | None = None, *, usage: Any = None,
               finish_reason: Any = "stop", model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A Chat Completions body; pass odd values to make it hostile."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": message or {"role": "assistant", "content": "hi"},
                     "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse_event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def text_chunk(text: str) -> bytes:
    return sse_event({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})
