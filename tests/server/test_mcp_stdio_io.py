"""The stdio transport's own reader and writer (`_stdio`: the server's threads instead of the
SDK's anyio file wrappers), read as raw lines: every answer whole, one JSON-RPC message a line
and in order, text in UTF-8 both ways, and nothing a tool prints on the wire (fd 1 is diverted
while serving, as the SDK's own transport does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

TOOLS_PY = '''
import os
import sys

from tether.tools import ToolRegistry

TOOLS = ToolRegistry()


@TOOLS.tool(side_effect="read", idempotent=True)
def shout(text: str) -> str:
    """Print on stdout (as a careless tool does), then answer."""
    print("stray print", text)
    sys.stdout.flush()
    os.write(1, b"stray bytes on fd 1\\n")
    return text.upper()
'''

POLICY = """\
name: stdio
rules:
  - id: shouts
    tools: [shout]
    effect: allow
"""


def _ask(proc: subprocess.Popen[str], message: dict[str, Any]) -> dict[str, Any] | None:
    """Send one line; read the answer's line if `message` is a request."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(message, ensure_ascii=False) + "\n")
    proc.stdin.flush()
    if "id" not in message:
        return None
    answer: dict[str, Any] = json.loads(proc.stdout.readline())  # not JSON: the test fails
    assert answer["id"] == message["id"]
    return answer


def test_answers_are_whole_lines_while_a_tool_prints(tmp_path: Path) -> None:
    (tmp_path / "stdio_tools.py").write_text(TOOLS_PY)
    (tmp_path / "policy.yaml").write_text(POLICY)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
           "TETHER_DB": str(tmp_path / "t.db")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "mcp", "serve", "--tools", "stdio_tools:TOOLS",
         "--policy", "policy.yaml"], cwd=tmp_path, env=env, text=True, encoding="utf-8",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        hello = _ask(proc, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}})
        assert hello is not None and "result" in hello
        _ask(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(1, 21):
            text = f"call {i} — héllo ✓"
            answer = _ask(proc, {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                 "params": {"name": "shout", "arguments": {"text": text}}})
            assert answer is not None
            assert answer["result"]["content"] == [{"type": "text", "text": text.upper()}]
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()  # end of input: the server stops, and writes nothing more
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
