"""`tether mcp serve --http` answers a supervisor's probes and Prometheus beside `/mcp`, with no
key: live, ready (its store answers, its worker claims), and the queue's depth after a call."""

from __future__ import annotations

from typing import Any

import httpx
import mcp_types as types
from mcp import Client

from .test_mcp_serve import HttpServer, make_setup


async def test_the_http_server_answers_probes_and_metrics(tmp_path: Any) -> None:
    server = HttpServer(make_setup(tmp_path))
    try:
        base = server.url.removesuffix("/mcp")
        async with Client(server.url, mode="legacy") as client:
            result = await client.call_tool("lookup", {"order_id": "A-1"})
            assert isinstance(result, types.CallToolResult) and not result.is_error
        async with httpx.AsyncClient() as http:
            live = await http.get(base + "/healthz")
            ready = await http.get(base + "/readyz")
            metrics = await http.get(base + "/metrics")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
            "text/plain")
        assert "tether_store_up 1" in metrics.text
        assert 'tether_runs{status="succeeded"} 1' in metrics.text
        assert "tether_worker_serving{" in metrics.text
    finally:
        server.stop()
