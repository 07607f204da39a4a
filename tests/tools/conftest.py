"""A real HTTP pet store on 127.0.0.1 for OpenAPI tool tests (stdlib http.server in a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DATA = Path(__file__).parent / "data"


@dataclass
class PetStore:
    base_url: str
    pets: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (method, path, headers) of every request, in order
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(store: PetStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            return

        def _send(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n)) if n else None

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            with store.lock:
                store.requests.append((method, url.path, dict(self.headers.items())))
            parts = url.path.strip("/").split("/")  # v1, pets, ...
            if parts[:2] != ["v1", "pets"]:
                return self._send(404, {"error": "no such route"})
            rest = parts[2:]
            if method == "GET" and not rest:
                q = parse_qs(url.query)
                limit = int(q.get("limit", ["20"])[0])
                tag = q.get("tag", [None])[0]
                pets = [p for _, p in sorted(store.pets.items()) if tag in (None, p.get("tag"))]
                return self._send(200, pets[:limit])
            if method == "POST" and not rest:
                body = self._body()
                with store.lock:
                    pid = len(store.pets) + 1
                    store.pets[pid] = {"id": pid, **body}
                return self._send(201, store.pets[pid])
            if method == "POST" and rest == ["batch"]:
                created = []
                for item in self._body():
                    with store.lock:
                        pid = len(store.pets) + 1
                        store.pets[pid] = {"id": pid, **item}
                    created.append(store.pets[pid])
                return self._send(201, created)
            if len(rest) == 1 and rest[0].isdigit():
                pid = int(rest[0])
                if pid not in store.pets:
                    return self._send(404, {"error": f"pet {pid} not found"})
                if method == "GET":
                    return self._send(200, store.pets[pid])
                if method == "DELETE":
                    del store.pets[pid]
                    return self._send(204)
            return self._send(405, {"error": "method not allowed"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@pytest.fixture
def petstore() -> Iterator[PetStore]:
    store = PetStore(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(store))
    store.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def petstore_spec() -> Path:
    return DATA / "petstore.yaml"
