"""A hostile HTTP API on 127.0.0.1 for the OpenAPI tool tests (stdlib http.server in a thread).

Each route is one way a server can misbehave towards a client: bodies too large to hold (plain,
and a gzip bomb), bodies that lie about being JSON, redirects to another origin and in a loop, an
answer that drips, specs that are alias bombs or nest without end. Every request that reaches it
is recorded (request line, headers, body), so a test can assert what went on the wire, and that
nothing did.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: what /huge and /huge-spec send: more than the 10 MiB response and 64 MiB spec limits
HUGE_BYTES = 80 * 1024 * 1024


@dataclass
class Seen:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]
    body: bytes


@dataclass
class Hostile:
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    #: bytes the server managed to write on /huge before the client hung up
    written: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same server under another host name: another origin to a client."""
        return f"http://localhost:{self.port}"

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if urlsplit(s.target).path == path]


@cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to ~64 KB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join(comp.compress(block) for _ in range(64)) + comp.flush()


def _handler(api: Hostile) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, ctype: str | None = "application/json",
                  **headers: str) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, chunk: bytes, total: int, ctype: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                while sent < total:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:  # the client hung up: what the test wants
                pass
            api.written.append(sent)
            self.close_connection = True

        def _route(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            api.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            path = urlsplit(self.path).path
            host = (self.headers.get("Host") or "").split(":")[0]
            if path == "/huge":
                return self._stream(b"[" + b"0," * 32767 + b"0]", HUGE_BYTES)
            if path == "/huge-spec":
                return self._stream(b"#" * 65535 + b"\n", HUGE_BYTES, "application/yaml")
            if path == "/deep-spec":
                return self._send(200, b"x: " + b"[" * 50_000 + b"]" * 50_000, "application/yaml")
            if path == "/gzip":
                return self._send(200, gzip_bomb(), "text/plain", Content_Encoding="gzip")
            if path == "/bad-json":
                return self._send(200, b"{not json")
            if path == "/latin1-json":
                return self._send(200, b'{"name": "Jos\xe9"}')
            if path == "/nan-json":
                return self._send(200, b'{"price": NaN}')
            if path == "/inf-json":
                return self._send(200, b'{"price": 1e999}')
            if path == "/deep-json":
                return self._send(200, b"[" * 100_000 + b"]" * 100_000)
            if path == "/away":  # to another origin
                return self._send(302, b"", None, Location=f"{api.other_origin}/landing")
            if path == "/here":  # same origin, method and body kept
                return self._send(307, b"", None, Location="/landing")
            if path == "/loop":
                return self._send(302, b"", None, Location="/loop")
            if path == "/drip":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.1)
                return None
            return self._send(200, b'{"host": "%s"}' % host.encode())

        do_GET = do_POST = do_PUT = _route

    return Handler


@contextmanager
def serve() -> Iterator[Hostile]:
    api = Hostile()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
