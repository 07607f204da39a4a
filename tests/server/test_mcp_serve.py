"""`tether mcp serve` as a process: streamable HTTP and stdio with the official SDK's client, the
MCP Inspector's CLI, and MCP tasks that survive the server being killed (SIGKILL) mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.mcp.node_tools import inspector_cli, node_env
from tests.server.mcp_agents import POLICY
from tether.runtime import Tether

ROOT = Path(__file__).resolve().parents[2]
TOOLS = "tests.server.mcp_agents:TOOLS"
AGENTS = ["--agent", "research=tests.server.mcp_agents:research",
          "--agent", "gated=tests.server.mcp_agents:gated"]


def make_setup(tmp_path: Path) -> dict[str, Any]:
    """A policy file, the server's environment and its database, in `tmp_path`."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCP_TEST_RAN": str(tmp_path / "ran.txt"),
           "TETHER_DB": str(tmp_path / "t.db")}
    return {"policy": str(policy), "env": env, "db": tmp_path / "t.db", "tmp": tmp_path}


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    return make_setup(tmp_path)


def serve_args(setup: dict[str, Any], *extra: str) -> list[str]:
    return [sys.executable, "-m", "tether", "mcp", "serve", "--tools", TOOLS,
            "--policy", setup["policy"], *AGENTS, *extra]


class HttpServer:
    """`tether mcp serve --http --port 0` in a process; `url` once it listens."""

    def __init__(self, setup: dict[str, Any], *extra: str) -> None:
        self.proc = subprocess.Popen(serve_args(setup, "--http", "--port", "0", *extra),
                                     cwd=ROOT, env=setup["env"], stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while True:
            line = self.proc.stderr.readline()
            found = re.search(r"at (http://\S+/mcp)", line)
            if found:
                self.url = found.group(1)
                return
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"server did not start: {line}{self.proc.stderr.read()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def http(setup: dict[str, Any]) -> Iterator[HttpServer]:
    server = HttpServer(setup)
    yield server
    server.stop()


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await client.session._dispatcher.send_raw_request(
        method, params, {})
    return result


def ran(setup: dict[str, Any]) -> list[str]:
    path = Path(setup["env"]["MCP_TEST_RAN"])
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_http(http: HttpServer, setup: dict[str, Any], mode: str) -> None:
    """Both eras of the protocol: the 2025-11-25 handshake and 2026-07-28 (`auto` probes
    server/discover)."""
    async with Client(http.url, mode=mode) as client:  # type: ignore[arg-type]
        names = {t.name for t in (await client.list_tools()).tools}
        added = await client.call_tool("add", {"a": 20, "b": 22})
        denied = await client.call_tool("delete_everything", {})
    assert names == {"add", "lookup", "refund", "research", "gated"}
    assert isinstance(added, types.CallToolResult) and not added.is_error
    assert isinstance(added.content[0], types.TextContent) and added.content[0].text == "42"
    assert isinstance(denied, types.CallToolResult) and denied.is_error
    assert ran(setup) == ["add"]
    runs = Tether(setup["db"]).runs(tenant="mcp")
    assert sorted(str(r.options["mcp"]["tool"]) for r in runs) == ["add", "delete_everything"]


async def test_stdio(setup: dict[str, Any]) -> None:
    args = serve_args(setup)
    params = StdioServerParameters(command=args[0], args=args[1:], env=setup["env"],
                                   cwd=str(ROOT))
    async with Client(params, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        looked = await client.call_tool("lookup", {"order_id": "o-9"})
    assert "lookup" in names and "delete_everything" not in names
    assert isinstance(looked, types.CallToolResult)
    assert looked.structured_content == {"order_id": "o-9", "status": "shipped"}


def test_inspector_cli_lists_and_calls(http: HttpServer, setup: dict[str, Any]) -> None:
    """The MCP Inspector's CLI (Node) against `tether mcp serve`: over HTTP and over stdio."""
    listed = subprocess.run([*inspector_cli(), http.url, "--transport", "http",
                             "--method", "tools/list"], env=node_env(), capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert names == {"add", "lookup", "refund", "research", "gated"}
    called = subprocess.run([*inspector_cli(), http.url, "--transport", "http",
                             "--method", "tools/call", "--tool-name", "add",
                             "--tool-arg", "a=2", "--tool-arg", "b=3"],
                            env=node_env(), capture_output=True, text=True, timeout=120)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["content"][0]["text"] == "5"
    # the Inspector hands its stdio child only the variables given with -e
    passed = [arg for k in ("MCP_TEST_RAN", "TETHER_DB", "PYTHONPATH")
              for arg in ("-e", f"{k}={setup['env'][k]}")]
    stdio = subprocess.run([*inspector_cli(), *passed, "--method", "tools/call",
                            "--tool-name", "lookup", "--tool-arg", "order_id=o-5", "--",
                            *serve_args(setup)],
                           env={**node_env(), **setup["env"]}, cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert stdio.returncode == 0, stdio.stderr
    assert json.loads(stdio.stdout)["structuredContent"] == {"order_id": "o-5",
                                                             "status": "shipped"}
    assert ran(setup) == ["add", "lookup"]


async def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_tasks_survive_a_server_crash(setup: dict[str, Any]) -> None:
    """SIGKILL the server while one task's step is running and another task sleeps on a durable
    timer; a new server process on the same database finishes both, and a new client gets the
    results by task id."""
    gate = setup["tmp"] / "gate.txt"
    first = HttpServer(setup, "--lease-ttl", "2")
    try:
        async with Client(first.url, mode="legacy") as client:
            gated = (await raw(client, "tools/call", {
                "name": "gated", "arguments": {"goal": "g", "gate": str(gate)},
                "task": {"ttl": 600000}}))["task"]["taskId"]
            sleeper = (await raw(client, "tools/call", {
                "name": "research", "arguments": {"goal": "crash", "sleep": 3},
                "task": {}}))["task"]["taskId"]
            await wait_for(lambda: "gate-step" in ran(setup), "the gated step to start")
            # the sleeper's `collect` step is not idempotent: killed in flight it would be in
            # doubt (a human decides), so the kill waits until the sleeper is on its timer
            journal = Tether(setup["db"])
            await wait_for(lambda: any(e.kind == "timer_started"
                                       for e in journal.events(sleeper)), "the sleeper's timer")
            status = await raw(client, "tasks/get", {"taskId": gated})
            assert status["status"] == "working"
    finally:
        first.kill()  # no shutdown, no drain: the step is in flight, the lease still held
    tether = Tether(setup["db"])
    assert tether.get(gated).status == "running"  # as the dead process left it
    gate.write_text("open")
    second = HttpServer(setup, "--lease-ttl", "2")
    try:
        async with Client(second.url, mode="legacy") as client:
            results = {t: await asyncio.wait_for(raw(client, "tasks/result", {"taskId": t}), 60)
                       for t in (gated, sleeper)}
            # a new connection lists only its own tasks: the ids are how a client finds its
            # tasks again after a restart
            listed = {t: (await raw(client, "tasks/get", {"taskId": t}))["status"]
                      for t in (gated, sleeper)}
            assert (await raw(client, "tasks/list", {}))["tasks"] == []
    finally:
        second.stop()
    assert results[gated]["structuredContent"] == {"goal": "g", "gate": "open"}
    assert results[sleeper]["structuredContent"] == {"answer": "NOTES ON CRASH"}
    assert listed[gated] == listed[sleeper] == "completed"
    events = tether.events(gated)
    kinds = [e.kind for e in events]
    assert "run_resumed" in kinds  # taken over by the second process
    starts = [e for e in events if e.kind == "step_started" and e.name == "wait-for-gate"]
    assert len(starts) == 2  # in flight at the kill, idempotent: run again, once
    assert ran(setup).count("gate-step") == 2


@pytest.mark.parametrize(("extra", "message"), [
    (["--tools", "tests.server.mcp_agents:NOPE"], "has no attribute 'NOPE'"),
    (["--tools", TOOLS, "--agent", "research"], "expected NAME=MODULE:FUNCTION"),
    (["--tools", TOOLS, "--agent", "x=tests.server.mcp_agents:missing"], "missing"),
    (["--tools", TOOLS, "--elicit-approver", "mcp-user"], "go together"),
    (["--tools", TOOLS, "--stdio", "--http"], "choose one transport"),
    # deny by default: no policy is an error, not every tool served to any client
    (["--tools", TOOLS], "the gateway denies by default"),
    (["--tools", TOOLS, "--no-policy", "--guards", "tests.server.mcp_agents:GUARDS"],
     "--no-policy contradicts"),
    (["--tools", TOOLS, "--no-policy", "--tenant", "a b"], "'a b' is not a tenant name"),
])
def test_bad_usage_is_one_clear_line(setup: dict[str, Any], extra: list[str],
                                     message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "tether", "mcp", "serve", *extra], cwd=ROOT,
                          env=setup["env"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


async def test_guards_reference_is_recorded_with_every_run(setup: dict[str, Any]) -> None:
    """--guards MODULE:NAME instead of --policy: the same listing and refusals, and each run
    names the guards, so any worker that executes it enforces them."""
    args = [sys.executable, "-m", "tether", "mcp", "serve", "--tools", TOOLS,
            "--guards", "tests.server.mcp_agents:GUARDS"]
    params = StdioServerParameters(command=args[0], args=args[1:], env=setup["env"],
                                   cwd=str(ROOT))
    async with Client(params, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        denied = await client.call_tool("delete_everything", {})
        added = await client.call_tool("add", {"a": 1, "b": 1})
    assert "delete_everything" not in names and "add" in names
    assert isinstance(denied, types.CallToolResult) and denied.is_error
    assert isinstance(added, types.CallToolResult) and not added.is_error
    runs = Tether(setup["db"]).runs(tenant="mcp")
    assert {r.options.get("guards") for r in runs} == {"tests.server.mcp_agents:GUARDS"}
    assert ran(setup) == ["add"]


def test_mcp_name_header_must_name_the_task(http: HttpServer) -> None:
    """SEP-2243: a 2026-07-28 request whose `Mcp-Name` header names another task than its body
    is refused (-32020): a proxy routing on the header must not act on one task and the server
    on another."""
    import httpx

    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {
                "extensions": {"io.modelcontextprotocol/tasks": {}}}}

    def ask(task_id: str, header: str) -> dict[str, Any]:
        reply = httpx.post(http.url, timeout=30, json={
            "jsonrpc": "2.0", "id": 1, "method": "tasks/get",
            "params": {"taskId": task_id, "_meta": meta}}, headers={
            "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tasks/get",
            "Mcp-Name": header, "Accept": "application/json, text/event-stream"})
        text = reply.text
        body = text[text.index("{"):text.rindex("}") + 1]
        return dict(json.loads(body))

    mismatch = ask("r-one", "r-other")
    assert mismatch["error"]["code"] == -32020, mismatch
    matching = ask("r-one", "r-one")
    assert matching["error"]["code"] == -32602 and "no task" in matching["error"]["message"]
