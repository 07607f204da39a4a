"""A raw stdio client for `tether mcp serve`: it writes lines the SDK's client never would
(malformed JSON, NaN, batches, nesting past the parser's limit) and reads answers with a
deadline, so a server that stays silent fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


class RawStdio:
    """`tether mcp serve` (stdio) under the example policy, speaking raw lines; initialized
    unless `handshake=False`."""

    def __init__(self, tmp: Path, policy: str, *, handshake: bool = True) -> None:
        (tmp / "policy.yaml").write_text(policy)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TETHER_DB": str(tmp / "t.db"),
               "MCP_TEST_RAN": str(tmp / "ran.txt")}
        self._pending = b""
        self.stderr = (tmp / "stderr.txt").open("wb")  # a file: a full pipe would block it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "mcp", "serve", "--tools",
             "tests.server.mcp_agents:TOOLS", "--policy", str(tmp / "policy.yaml"),
             "--agent", "research=tests.server.mcp_agents:research"],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr)
        if handshake:
            self.handshake()

    def handshake(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "0"}}})
        assert "result" in self.receive(60), "the server did not answer initialize"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any] | bytes) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        stdin.write(line + b"\n")
        stdin.flush()

    def flood(self, messages: list[dict[str, Any]]) -> threading.Thread:
        """Write `messages` from a thread, reading nothing: the thread blocks when the server
        stops reading (its stdin pipe fills)."""
        def write() -> None:
            for message in messages:
                self.send(message)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        return thread

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message from the server; AssertionError if none comes in `timeout` s.
        Reads the pipe's descriptor into its own buffer: `select` does not see lines a
        buffered reader already holds."""
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line, newline, rest = self._pending.partition(b"\n")
            if newline:
                self._pending = rest
                message: dict[str, Any] = json.loads(line)
                if "method" not in message:  # skip the server's own notifications/requests
                    return message
                continue
            left = deadline - time.monotonic()
            ready, _, _ = select.select([stdout], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no answer from the server within {timeout}s")
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                raise AssertionError("the server closed stdout")
            self._pending += chunk

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()

    def __enter__(self) -> RawStdio:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
