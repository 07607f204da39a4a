"""A real HTTP server speaking the OpenAI chat-completions protocol, with scripted replies, so
the demo runs end to end (real runtime, real sandbox) fast and deterministically."""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SALES_STEP1 = (
    "import os\n"
    "import pandas as pd\n"
    "df = pd.read_csv('sales.csv')\n"
    "print(os.getcwd(), list(df.columns))\n"
    "df['revenue'] = df['units'] * df['unit_price']\n"
    "df.to_csv('revenue.csv', index=False)\n"
)
SALES_STEP2 = (
    "import pandas as pd\n"
    "df = pd.read_csv('revenue.csv')\n"
    "totals = df.groupby('region')['revenue'].sum().sort_values(ascending=False)\n"
    "print(totals)\n"
    "print('TOP', totals.index[0], totals.iloc[0])\n"
)


def _own_tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"]
            if m["role"] == "tool" and not str(m.get("tool_call_id", "")).startswith("example")]


def _call(call_id: str, name: str, arguments: dict[str, Any], text: str | None) -> dict[str, Any]:
    return {"role": "assistant", "content": text,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def countries_reply(own: list[dict[str, Any]]) -> dict[str, Any]:
    """Look up, then calculate, then answer."""
    if not own:
        return _call("c1", "lookup_country", {"country": "Japan"}, "I need Japan's figures.")
    if len(own) == 1:
        figures = json.loads(own[0]["content"])
        expr = f"{figures['population']} / {figures['area_km2']}"
        return _call("c2", "calculate", {"expression": expr}, None)
    return {"role": "assistant",
            "content": f"Japan has about {float(own[1]['content']):.1f} people per km2."}


def analysis_reply(own: list[dict[str, Any]], goal: str) -> dict[str, Any]:
    """Inspect and write revenue.csv; read it back and total per region; answer from stdout.

    The 'model' never sees the CSV: the answer can only come from what the sandbox printed.
    A goal containing HASTY gets an invented answer first (until the demo says so)."""
    if "HASTY" in goal and "earlier attempt" not in goal:
        return {"role": "assistant", "content": "Bergen has the highest revenue: 1008.0."}
    if not own:
        return _call("a1", "python", {"code": SALES_STEP1}, "Inspect the table, save revenue.")
    if len(own) == 1:
        return _call("a2", "python", {"code": SALES_STEP2}, "Total the revenue per region.")
    stdout = json.loads(own[-1]["content"])["stdout"]
    top = next(line for line in stdout.splitlines() if line.startswith("TOP "))
    _, region, total = top.split()
    return {"role": "assistant",
            "content": f"{region} has the highest total revenue: {total} (from the sandbox)."}


def reply(body: dict[str, Any]) -> dict[str, Any]:
    tools = {t["function"]["name"] for t in body.get("tools") or []}
    own = _own_tool_messages(body)
    goal = str(body["messages"][-1 - len(own) * 2]["content"]) if own else str(
        body["messages"][-1]["content"])
    message = analysis_reply(own, goal) if "python" in tools else countries_reply(own)
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {"id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


@pytest.fixture
def fake_openai() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            try:
                data, status = json.dumps(reply(body)).encode(), 200
            except Exception:  # a script that cannot answer says why, in the demo's output
                last = body["messages"][-1] if body.get("messages") else None
                data = json.dumps({"error": {"message": "the fake server's script failed on "
                                             f"the last message {last!r}:\n"
                                             + traceback.format_exc()}}).encode()
                status = 500
            self.send_response(status if self.path == "/v1/chat/completions" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
