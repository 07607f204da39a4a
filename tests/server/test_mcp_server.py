"""`TetherMCPServer` in process, through the official SDK's client: the policy decides what is
listed and what runs, every call is a journaled run, approvals wait durably, agents are MCP
tasks, runs are resources; what a client cannot do around the policy."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.server import mcp_agents
from tests.server.mcp_agents import TOOLS
from tests.server.mcp_support import calls, raw, tool_steps
from tether.guards import (
    GuardConfig,
    Guards,
    inbox,
    loads_policy,
    sign_decision,
)
from tether.runtime import Tether
from tether.server.mcp import AgentTool, TetherMCPServer
from tether.store import vocabulary as v

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]



async def test_policy_decides_what_is_listed(server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    # denied outright (a deny rule, no allow rule = deny by default) -> not listed
    assert set(listed) == {"add", "lookup", "refund", "research", "forever"}
    add = listed["add"]
    assert add.input_schema["required"] == ["a", "b"]
    assert add.annotations is not None and add.annotations.read_only_hint is True
    assert listed["refund"].annotations is not None
    assert listed["refund"].annotations.read_only_hint is False
    assert listed["research"].execution is not None
    assert listed["research"].execution.task_support == "optional"
    assert listed["forever"].execution is not None
    assert listed["forever"].execution.task_support == "required"


async def test_allowed_call_is_a_journaled_run(server: TetherMCPServer, ran: Path) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        result = await client.call_tool("add", {"a": 2, "b": 40})
    assert isinstance(result, types.CallToolResult)
    assert not result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == "42"
    assert calls(ran) == ["add"]
    runs = server.tether.runs(tenant="mcp")
    assert len(runs) == 1 and runs[0].status == "succeeded"
    steps = tool_steps(server.tether, runs[0].id)
    assert [s.name for s in steps] == ["tool:add"]
    records = [r for e in server.tether.events(runs[0].id) if (r := v.tool_call(e))]
    assert [(r.tool, r.ok, r.output, r.answered_by) for r in records] == [("add", True, 42, None)]


async def test_denied_tool_called_by_name_is_refused_without_running(
        server: TetherMCPServer, ran: Path) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        denied = await client.call_tool("delete_everything", {"confirm": True})
        by_default = await client.call_tool("unlisted_write", {"x": 1})
    for result, rule in ((denied, "never-delete"), (by_default, "default")):
        assert isinstance(result, types.CallToolResult) and result.is_error
        assert isinstance(result.content[0], types.TextContent)
        assert "policy_denied" in result.content[0].text
        assert rule in result.content[0].text
    assert calls(ran) == []  # neither tool ran
    # the refusals are in the journal, with the decision
    for run in server.tether.runs(tenant="mcp"):
        (step,) = tool_steps(server.tether, run.id)
        decision = v.guard_decision(step)
        assert decision is not None and decision.action == "deny"
        assert decision.short_circuit == "policy"


async def test_invalid_arguments_are_an_error_the_client_can_read(
        server: TetherMCPServer, ran: Path) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        result = await client.call_tool("add", {"a": "two", "b": 1})
    assert isinstance(result, types.CallToolResult) and result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert "a" in result.content[0].text and "invalid_arguments" in result.content[0].text
    assert calls(ran) == []


async def test_unknown_tool_is_not_run(server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        result = await client.call_tool("no_such_tool", {})
    assert isinstance(result, types.CallToolResult) and result.is_error
    assert server.tether.runs(tenant="mcp") == []


async def test_approval_waits_durably_then_runs(server: TetherMCPServer, ran: Path,
                                                keys: dict[str, Any]) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        created = await raw(client, "tools/call", {
            "name": "refund", "arguments": {"order_id": "o-7", "amount": 12.5}, "task": {}})
        task_id = created["task"]["taskId"]
        assert created["task"]["status"] == "working"
        for _ in range(100):
            state = await raw(client, "tasks/get", {"taskId": task_id})
            if "approval" in str(state.get("statusMessage", "")):
                break
            await asyncio.sleep(0.05)
        assert state["status"] == "working"
        assert server.tether.get(task_id).status == "waiting"  # a row, no worker held
        assert calls(ran) == []
        # an approver decides from elsewhere (here: another client of the same database)
        approver = Tether(server.tether.store.path)  # type: ignore[attr-defined]
        request, _ = inbox.find(approver.store, f"{task_id}.a1")
        decision = sign_decision(keys["private"], request.id, "approve", "alice", request.digest)
        assert inbox.decide(approver, decision, keys["registry"]) == "approved"
        result = await raw(client, "tasks/result", {"taskId": task_id})
    assert result["isError"] is False
    assert result["structuredContent"] == {"refunded": "o-7", "amount": 12.5}
    assert result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"] == task_id
    assert calls(ran) == ["refund"]


async def test_agent_as_task(server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        caps = client.session.server_capabilities
        assert caps is not None and caps.tasks is not None
        assert caps.tasks.requests is not None and caps.tasks.requests.tools is not None
        created = await raw(client, "tools/call", {
            "name": "research", "arguments": {"goal": "mcp", "sleep": 1.2},
            "task": {"ttl": 60000}})
        task = created["task"]
        assert task["status"] == "working" and task["ttl"] == 60000
        assert task["pollInterval"] > 0 and task["createdAt"].endswith("Z")
        listed = await raw(client, "tasks/list", {})
        assert task["taskId"] in [t["taskId"] for t in listed["tasks"]]
        result = await raw(client, "tasks/result", {"taskId": task["taskId"]})
        assert result["structuredContent"] == {"answer": "NOTES ON MCP"}
        done = await raw(client, "tasks/get", {"taskId": task["taskId"]})
        assert done["status"] == "completed"
        # the same agent without a task: the call waits for the run
        plain = await client.call_tool("research", {"goal": "x", "sleep": 0})
    assert isinstance(plain, types.CallToolResult) and plain.structured_content == {
        "answer": "NOTES ON X"}


async def test_task_cancel(server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="legacy") as client:
        with pytest.raises(MCPError, match="must be called as a task"):
            await client.call_tool("forever", {"goal": "x"})
        created = await raw(client, "tools/call", {
            "name": "forever", "arguments": {"goal": "x"}, "task": {}})
        task_id = created["task"]["taskId"]
        cancelled = await raw(client, "tasks/cancel", {"taskId": task_id})
        assert cancelled["status"] == "cancelled"
        assert server.tether.get(task_id).status == "cancelled"
        with pytest.raises(MCPError, match="terminal"):
            await raw(client, "tasks/cancel", {"taskId": task_id})
        result = await raw(client, "tasks/result", {"taskId": task_id})
        assert result["isError"] is True


async def test_tasks_of_others_are_not_found(server: TetherMCPServer, tmp_path: Path) -> None:
    other = Tether(server.tether.store.path)  # type: ignore[attr-defined]
    foreign = other.submit("tests.server.mcp_agents:research", {"goal": "secret"},
                           tenant="acme")
    async with Client(server.sdk, mode="legacy") as client:
        plain = await client.call_tool("add", {"a": 1, "b": 1})
        assert isinstance(plain, types.CallToolResult)
        not_a_task = server.tether.runs(tenant="mcp")[0].id
        for task_id in (foreign, not_a_task, "r000", "../etc"):
            with pytest.raises(MCPError, match="no task"):
                await raw(client, "tasks/get", {"taskId": task_id})
            with pytest.raises(MCPError, match="no task"):
                await raw(client, "tasks/result", {"taskId": task_id})
        with pytest.raises(MCPError, match="taskId"):
            await raw(client, "tasks/get", {})


async def test_runs_are_resources(server: TetherMCPServer) -> None:
    secret = server.tether.store.put_artifact(b"another tenant's file")
    other = Tether(server.tether.store.path)  # type: ignore[attr-defined]
    foreign = other.submit("tests.server.mcp_agents:research", {"goal": secret}, tenant="acme")
    async with Client(server.sdk, mode="legacy") as client:
        await client.call_tool("lookup", {"order_id": "o-1"})
        (run,) = server.tether.runs(tenant="mcp")
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        assert f"tether://runs/{run.id}" in listed
        templates = (await client.list_resource_templates()).resource_templates
        assert any(t.uri_template == "tether://runs/{run_id}/timeline" for t in templates)
        body = await client.read_resource(f"tether://runs/{run.id}")
        content = body.contents[0]
        assert isinstance(content, types.TextResourceContents)
        assert '"status":"succeeded"' in content.text and '"shipped"' in content.text
        timeline = await client.read_resource(f"tether://runs/{run.id}/timeline")
        assert isinstance(timeline.contents[0], types.TextResourceContents)
        assert "tool:lookup" in timeline.contents[0].text
        # hostile: another tenant's run, an artifact its journal does not name, path tricks
        for uri in (f"tether://runs/{foreign}", f"tether://runs/{run.id}/artifacts/{secret}",
                    f"tether://runs/{foreign}/artifacts/{secret}",
                    f"tether://runs/{run.id}/../{foreign}", "tether://artifacts/" + secret):
            with pytest.raises(MCPError, match="resource not found"):
                await client.read_resource(uri)


async def test_artifact_the_run_produced_is_readable(server: TetherMCPServer) -> None:
    server.add_agent(AgentTool("report", "tests.server.mcp_agents:report"))
    async with Client(server.sdk, mode="legacy") as client:
        answer = await client.call_tool("report", {"goal": "q3"})
        assert isinstance(answer.structured_content, dict)
        digest = answer.structured_content["report"]
        (run,) = server.tether.runs(tenant="mcp")
        body = await client.read_resource(f"tether://runs/{run.id}/artifacts/{digest}")
    blob = body.contents[0]
    assert isinstance(blob, types.BlobResourceContents)
    assert base64.b64decode(blob.blob) == b"\x00report on q3"


def test_agents_are_checked_when_exposed(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"no_such_agent|has no attribute|cannot"):
        TetherMCPServer(TOOLS, db=tmp_path / "t.db",
                        agents={"x": "tests.server.mcp_agents:no_such_agent"})
    with pytest.raises(ValueError, match="already served"):
        TetherMCPServer(TOOLS, db=tmp_path / "t.db",
                        agents={"add": "tests.server.mcp_agents:research"})


def test_agents_module_is_importable() -> None:
    assert mcp_agents.TOOLS.names() == sorted(
        ["add", "lookup", "refund", "delete_everything", "unlisted_write"])



async def test_hostile_calls_around_the_policy(tmp_path: Path, ran: Path) -> None:
    """What a client cannot do: reach a denied tool through a task, through the SDK server, or
    with arguments a conditional rule denies."""
    policy = loads_policy("""
name: hostile
rules:
  - {id: lookups, tools: [lookup], effect: allow}
  - {id: not-that-order, tools: [lookup], effect: deny, args: {order_id: {in: [o-secret]}}}
  - {id: sdk-reads, tools: [peek], effect: allow}
""")
    srv = TetherMCPServer(TOOLS, db=tmp_path / "t.db",
                          guards=Guards(GuardConfig(policy=policy), tools=TOOLS))
    touched: list[str] = []

    @srv.sdk.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    def peek() -> str:
        """Allowed by name."""
        touched.append("peek")
        return "peeked"

    @srv.sdk.tool()
    def wipe() -> str:
        """No rule allows it."""
        touched.append("wipe")
        return "wiped"

    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"lookup", "peek"}  # listed: some lookup is allowed; wipe is not
        secret = await client.call_tool("lookup", {"order_id": "o-secret"})
        task = await raw(client, "tools/call", {"name": "delete_everything", "arguments": {},
                                                "task": {}})
        via_task = await raw(client, "tasks/result", {"taskId": task["task"]["taskId"]})
        wiped = await client.call_tool("wipe", {})
        peeked = await client.call_tool("peek", {})
    srv.close()
    assert isinstance(secret, types.CallToolResult) and secret.is_error
    assert isinstance(secret.content[0], types.TextContent)
    assert "not-that-order" in secret.content[0].text
    assert via_task["isError"] is True and "policy_denied" in via_task["content"][0]["text"]
    assert isinstance(wiped, types.CallToolResult) and wiped.is_error
    assert isinstance(peeked, types.CallToolResult) and not peeked.is_error
    assert calls(ran) == [] and touched == ["peek"]
