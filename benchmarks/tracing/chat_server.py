"""The OpenAI-compatible chat server of bench-tracing's HTTP client step: canned tool calls,
served from the benchmark's driver process so that its CPU is not the measured process's."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTTP_MODEL = "bench-chat"  # the model name the client asks the local chat server for


@contextlib.contextmanager
def chat_server() -> Iterator[tuple[str, Callable[[], int]]]:
    """A minimal OpenAI-compatible server on 127.0.0.1 in this driver process (so its CPU is not
    the measured process's): every `/v1/chat/completions` gets one `lookup` tool call with a
    fresh call id and a usage block. HTTP/1.1 keep-alive and TCP_NODELAY, as real servers answer
    (without it the reply's body waits ~40 ms behind its headers for the client's delayed ACK),
    so the client reuses its connection. Yields (base_url, how many completions it answered)."""
    lock, answered = threading.Lock(), [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if self.path != "/v1/chat/completions" or not body.get("messages"):
                self.send_error(400, f"expected a chat request, not {self.path}")
                return
            with lock:
                answered[0] += 1
                n = answered[0]
            prompt = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4 + 20
            reply = json.dumps({
                "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", HTTP_MODEL),
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": None, "tool_calls": [{
                        "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                        "function": {"name": "lookup", "arguments": '{"order": "A-7"}'}}]}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 12,
                          "total_tokens": prompt + 12}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", lambda: answered[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
