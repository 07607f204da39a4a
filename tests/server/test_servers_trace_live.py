"""Both servers export their runs' traces live when the OTEL environment names a collector,
as `tether run` and `tether worker` do: `tether mcp serve` (each call a run, executed by the
server's own worker, most of them written only with their end: `Worker.start_new`) and the REST
server's embedded worker. Before, neither server's worker was followed, and a user who set
OTEL_EXPORTER_OTLP_ENDPOINT saw nothing of the calls it served.

The collector is a real OTLP/HTTP receiver (tests/observe/otel_receiver.py); the spans it gets
must be exactly the runs' spans as `tether trace` derives them from the journal."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.observe.otel_receiver import http_receiver
from tests.server.mcp_agents import POLICY
from tether.observe import run_spans
from tether.runtime import Tether

ROOT = Path(__file__).resolve().parents[2]
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
             "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED")


def _env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    env.update({"PYTHONPATH": str(ROOT), "MCP_TEST_RAN": str(tmp_path / "ran.txt"),
                "TETHER_DB": str(tmp_path / "t.db"), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_METRICS_EXPORTER": "none", "OTEL_SERVICE_NAME": "mcp-tools"})
    return env


async def test_mcp_serve_exports_each_call_live(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with http_receiver() as (endpoint, received):
        args = [sys.executable, "-m", "tether", "mcp", "serve", "--tools",
                "tests.server.mcp_agents:TOOLS", "--policy", str(policy)]
        params = StdioServerParameters(command=args[0], args=args[1:],
                                       env=_env(tmp_path, endpoint), cwd=str(ROOT))
        async with Client(params, mode="legacy") as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})  # one commit: start_new
            looked = await client.call_tool("lookup", {"order_id": "o-9"})  # durable start
        assert not added.is_error and not looked.is_error
        # the server sent its last spans before it exited (stdin closed)
        spans = received.snapshot()
    t = Tether(str(tmp_path / "t.db"))
    runs = t.runs(tenant="mcp")
    assert len(runs) == 2
    expected: dict[str, Any] = {}
    for run in runs:
        for span in run_spans(t, run.id):
            expected[span.span_id] = span.name
    assert sorted(s.span_id for s in spans) == sorted(expected), "spans missing or repeated"
    names = sorted(s.name for s in spans)
    assert names.count("execute_tool add") == 1 and names.count("execute_tool lookup") == 1
    assert sum(n.startswith("invoke_agent") for n in names) == 2
    assert {s.service for s in spans} == {"mcp-tools"}
    t.close()


@pytest.mark.slow
def test_rest_server_exports_its_runs_live(tmp_path: Path, tether_serve: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as (endpoint, received):
        for name in OTEL_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        with tether_serve(tmp_path, "echo: tests.server.api_support:echo\n",
                          keys={"op": ("acme", "operator", None)}) as served:
            headers = {"Authorization": f"Bearer {served.keys['op']}"}
            with httpx.Client(base_url=served.base, headers=headers, timeout=30) as c:
                run_id = c.post("/v1/runs", json={"agent": "echo", "input": "hi"}
                                ).json()["run"]["id"]
                deadline = time.monotonic() + 60
                while c.get(f"/v1/runs/{run_id}").json()["run"]["status"] != "succeeded":
                    assert time.monotonic() < deadline, "the run did not finish"
                    time.sleep(0.05)
        spans = received.snapshot()  # the server sent its last spans as it stopped
    t = Tether(str(tmp_path / "tether.db"))
    expected = sorted(s.span_id for s in run_spans(t, run_id))
    assert expected and sorted(s.span_id for s in spans) == expected
    t.close()
