"""`TetherMCPServer` in process, through the official SDK's client: the policy decides what is
listed and what runs, every call is a journaled run, approvals wait durably, agents are MCP
tasks, runs are resources."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.server.mcpserver import Context as SdkContext
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from tests.server import mcp_agents
from tests.server.mcp_agents import POLICY, TOOLS
from tether.guards import (
    GuardConfig,
    Guards,
    KeyRegistry,
    generate_keypair,
    inbox,
    load_private_key,
    loads_policy,
    sign_decision,
)
from tether.runtime import Tether
from tether.server.mcp import AgentTool, ElicitationApprover, TetherMCPServer
from tether.store import vocabulary as v
from tether.tools import ToolRegistry

AGENTS = {
    "research": AgentTool("research", "tests.server.mcp_agents:research",
                          description="Research a goal (long-running)."),
    "forever": AgentTool("forever", "tests.server.mcp_agents:forever",
                         task_support="required"),
}


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ran.txt"
    monkeypatch.setenv("MCP_TEST_RAN", str(path))
    return path


def calls(ran: Path) -> list[str]:
    return ran.read_text().split() if ran.exists() else []


@pytest.fixture
def keys() -> dict[str, Any]:
    private, public = generate_keypair()
    registry = KeyRegistry()
    registry.register("alice", public)
    return {"private": load_private_key(private), "registry": registry}


@pytest.fixture
async def server(tmp_path: Path, keys: dict[str, Any]) -> AsyncIterator[TetherMCPServer]:
    guards = Guards(GuardConfig(policy=loads_policy(POLICY), approvers=keys["registry"]),
                    tools=TOOLS)
    srv = TetherMCPServer(TOOLS, db=tmp_path / "t.db", guards=guards, agents=AGENTS)
    async with srv.running():
        yield srv
    srv.close()


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request the SDK client has no method for (tasks are not in its 2.3 API)."""
    result: dict[str, Any] = await client.session._dispatcher.send_raw_request(
        method, params, {})
    return result


def tool_steps(tether: Tether, run_id: str) -> list[Any]:
    return [e for e in tether.events(run_id)
            if e.kind == "step_started" and str(e.name).startswith("tool:")]


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


async def test_artifact_named_by_the_run_is_readable(server: TetherMCPServer) -> None:
    digest = server.tether.store.put_artifact(b"\x00report bytes")
    async with Client(server.sdk, mode="legacy") as client:
        await client.call_tool("lookup", {"order_id": digest})  # the journal now names it
        (run,) = server.tether.runs(tenant="mcp")
        body = await client.read_resource(f"tether://runs/{run.id}/artifacts/{digest}")
    blob = body.contents[0]
    assert isinstance(blob, types.BlobResourceContents)
    assert base64.b64decode(blob.blob) == b"\x00report bytes"


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


@pytest.fixture
async def open_server(tmp_path: Path) -> AsyncIterator[TetherMCPServer]:
    """No policy: every tool served. Adds tools that need the live request, on the SDK server,
    and a registry tool answering MCP content blocks."""
    registry = ToolRegistry()

    @registry.tool(side_effect="read")
    def chart() -> list[dict[str, Any]]:
        """A chart and its caption."""
        return [types.ImageContent(type="image", data=base64.b64encode(b"png").decode(),
                                   mime_type="image/png").model_dump(),
                types.TextContent(type="text", text="sales by month").model_dump()]

    srv = TetherMCPServer(registry, db=tmp_path / "t.db")

    @srv.sdk.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def count_up(steps: int, ctx: SdkContext) -> str:
        """Reports progress and logs while it counts."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps)
        await ctx.info(f"counted to {steps}")
        return f"done {steps}"

    @srv.sdk.tool()
    async def ask_user(ctx: SdkContext) -> str:
        """Asks the client's user a question (elicitation)."""
        answer = await ctx.elicit("Your name?", NameForm)
        return f"hello {answer.data.name}" if answer.action == "accept" else answer.action

    async with srv.running():
        yield srv
    srv.close()


class NameForm(BaseModel):
    name: str


async def test_content_blocks_are_answered_as_content(open_server: TetherMCPServer) -> None:
    async with Client(open_server.sdk, mode="legacy") as client:
        result = await client.call_tool("chart", {})
    assert isinstance(result, types.CallToolResult) and not result.is_error
    image, caption = result.content
    assert isinstance(image, types.ImageContent) and image.mime_type == "image/png"
    assert base64.b64decode(image.data) == b"png"
    assert isinstance(caption, types.TextContent) and caption.text == "sales by month"


async def test_sdk_tools_get_the_live_request_and_are_journaled(
        open_server: TetherMCPServer) -> None:
    progress: list[float] = []
    logs: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_elicit(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with Client(open_server.sdk, mode="legacy", logging_callback=on_log,
                      elicitation_callback=on_elicit) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert {"chart", "count_up", "ask_user"} <= listed
        counted = await client.call_tool("count_up", {"steps": 3}, progress_callback=on_progress)
        hello = await client.call_tool("ask_user", {})
    assert isinstance(counted, types.CallToolResult) and not counted.is_error
    assert isinstance(counted.content[0], types.TextContent)
    assert counted.content[0].text == "done 3"
    assert progress == [1, 2, 3] and logs == ["counted to 3"]
    assert isinstance(hello, types.CallToolResult) and isinstance(hello.content[0],
                                                                  types.TextContent)
    assert hello.content[0].text == "hello Ada"
    tools = sorted(str(r.options["mcp"]["tool"]) for r in open_server.tether.runs(tenant="mcp"))
    assert tools == ["ask_user", "count_up"]
    for run in open_server.tether.runs(tenant="mcp"):
        assert run.status == "succeeded" and len(tool_steps(open_server.tether, run.id)) == 1


async def test_sdk_tool_run_without_its_request_fails_clearly(
        open_server: TetherMCPServer) -> None:
    """A session-tool run a worker picks up after its request is gone (a restart) does not run
    the tool blind."""
    async with Client(open_server.sdk, mode="legacy") as client:
        await client.list_tools()
    run_id = await open_server.submit("count_up", {"steps": 1})
    run = await open_server.worker.settled(run_id)
    result = open_server.tether.get(run.id).result
    assert result["ok"] is False and "request that called it" in result["error"]["message"]


async def test_protocol_error_of_an_sdk_tool_reaches_the_client(tmp_path: Path) -> None:
    """An SDK tool raising a JSON-RPC error (here: a capability the client did not declare) is
    answered with that error, as the SDK's own server answers it; the run records the failure."""
    srv = TetherMCPServer(ToolRegistry(), db=tmp_path / "t.db")

    @srv.sdk.tool()
    async def needs_sampling() -> str:
        """Refuses clients without sampling."""
        raise MCPError(-32021, "the client must declare sampling",
                       {"requiredCapabilities": {"sampling": {}}})

    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("needs_sampling", {})
    assert caught.value.code == -32021
    (run,) = srv.tether.runs(tenant="mcp")
    assert run.status == "succeeded" and run.result["ok"] is False
    srv.close()


@pytest.fixture
async def eliciting(tmp_path: Path, keys: dict[str, Any]) -> AsyncIterator[TetherMCPServer]:
    """Approvals may be decided by the client's user: `mcp-user` is a registered approver."""
    private, public = generate_keypair()
    keys["registry"].register("mcp-user", public)
    guards = Guards(GuardConfig(policy=loads_policy(POLICY), approvers=keys["registry"]),
                    tools=TOOLS)
    srv = TetherMCPServer(TOOLS, db=tmp_path / "t.db", guards=guards, elicitation_approver=(
        ElicitationApprover("mcp-user", load_private_key(private))))
    async with srv.running():
        yield srv
    srv.close()


@pytest.mark.parametrize("approve", [True, False])
async def test_approval_by_elicitation(eliciting: TetherMCPServer, ran: Path,
                                       approve: bool) -> None:
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve,
                                                            "reason": "checked the order"})

    async with Client(eliciting.sdk, mode="legacy", elicitation_callback=on_elicit) as client:
        result = await client.call_tool("refund", {"order_id": "o-8", "amount": 3.0})
    assert len(asked) == 1 and "refund" in asked[0] and '"order_id":"o-8"' in asked[0]
    assert isinstance(result, types.CallToolResult)
    (run,) = eliciting.tether.runs(tenant="mcp")
    logs = [e.data for e in eliciting.tether.events(run.id) if e.kind == "log"]
    if approve:
        assert not result.is_error and result.structured_content == {"refunded": "o-8",
                                                                     "amount": 3.0}
        assert calls(ran) == ["refund"]
        assert any("approved by mcp-user" in str(entry) for entry in logs)
    else:
        assert result.is_error and isinstance(result.content[0], types.TextContent)
        assert "denied by approver 'mcp-user': checked the order" in result.content[0].text
        assert calls(ran) == []


async def test_dismissed_elicitation_leaves_the_approval_to_others(
        eliciting: TetherMCPServer, ran: Path, keys: dict[str, Any]) -> None:
    async def dismiss(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="cancel")

    async with Client(eliciting.sdk, mode="legacy", elicitation_callback=dismiss) as client:
        call = asyncio.create_task(client.call_tool("refund", {"order_id": "o-9",
                                                               "amount": 1.0}))
        for _ in range(200):
            runs = eliciting.tether.runs(tenant="mcp")
            if runs and runs[0].status == "waiting":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert not call.done() and calls(ran) == []  # still waiting, durably
        approver = Tether(eliciting.tether.store.path)  # type: ignore[attr-defined]
        request, _ = inbox.find(approver.store, f"{runs[0].id}.a1")
        inbox.decide(approver, sign_decision(keys["private"], request.id, "approve", "alice",
                                             request.digest), keys["registry"])
        result = await asyncio.wait_for(call, 30)
    assert isinstance(result, types.CallToolResult) and not result.is_error
    assert calls(ran) == ["refund"]


def test_elicitation_approver_must_be_registered(tmp_path: Path) -> None:
    private, _ = generate_keypair()
    guards = Guards(GuardConfig(policy=loads_policy(POLICY)), tools=TOOLS)
    with pytest.raises(ValueError, match="not a registered approver"):
        TetherMCPServer(TOOLS, db=tmp_path / "t.db", guards=guards, elicitation_approver=(
            ElicitationApprover("mcp-user", load_private_key(private))))


TASKS_EXTENSION = "io.modelcontextprotocol/tasks"


async def test_tasks_extension_of_2026(server: TetherMCPServer) -> None:
    """A client that declares `io.modelcontextprotocol/tasks` (SEP-2663) gets its wire: the
    server makes an agent's call a task, `tasks/get` inlines the result, `tasks/cancel` acks."""
    from mcp.client import advertise

    async with Client(server.sdk, mode="legacy",
                      extensions=[advertise(TASKS_EXTENSION)]) as client:
        caps = client.session.server_capabilities
        assert caps is not None and caps.extensions is not None
        assert TASKS_EXTENSION in caps.extensions and caps.tasks is None  # no v1 slot
        sync = await raw(client, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert "taskId" not in sync and sync["content"][0]["text"] == "3"
        made = await raw(client, "tools/call", {"name": "research",
                                                "arguments": {"goal": "ext", "sleep": 0}})
        assert made["resultType"] == "task" and "task" not in made
        assert {"taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs"} <= set(made)
        assert "ttl" not in made and "pollInterval" not in made
        for _ in range(200):
            got = await raw(client, "tasks/get", {"taskId": made["taskId"]})
            if got["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert got["result"]["structuredContent"] == {"answer": "NOTES ON EXT"}
        assert "io.modelcontextprotocol/related-task" not in (got["result"].get("_meta") or {})
        with pytest.raises(MCPError) as no_result:
            await raw(client, "tasks/result", {"taskId": made["taskId"]})
        assert no_result.value.code == -32601
        assert await raw(client, "tasks/cancel", {"taskId": made["taskId"]}) == {
            "resultType": "complete"}  # terminal: the same acknowledgement
        slow = await raw(client, "tools/call", {"name": "research",
                                                "arguments": {"goal": "c", "sleep": 30}})
        ack = await raw(client, "tasks/cancel", {"taskId": slow["taskId"]})
        assert ack == {"resultType": "complete"}
        after = await raw(client, "tasks/get", {"taskId": slow["taskId"]})
        assert after["status"] == "cancelled" and "result" not in after


async def test_tasks_extension_failed_run_is_a_protocol_error(server: TetherMCPServer,
                                                               tmp_path: Path) -> None:
    from mcp.client import advertise

    server.add_agent(AgentTool("broken", "tests.server.mcp_agents:broken"))
    async with Client(server.sdk, mode="legacy",
                      extensions=[advertise(TASKS_EXTENSION)]) as client:
        made = await raw(client, "tools/call", {"name": "broken", "arguments": {"goal": "x"}})
        for _ in range(200):
            got = await raw(client, "tasks/get", {"taskId": made["taskId"]})
            if got["status"] != "working":
                break
            await asyncio.sleep(0.05)
    assert got["status"] == "failed" and "result" not in got
    assert got["error"]["code"] == -32603 and "no sources" in got["error"]["message"]


async def test_2026_client_without_the_extension_has_no_tasks(server: TetherMCPServer) -> None:
    async with Client(server.sdk, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as refused:
            await raw(client, "tasks/get", {"taskId": "r123"})
        plain = await client.call_tool("research", {"goal": "sync", "sleep": 0})
    assert refused.value.code == -32021
    assert isinstance(plain, types.CallToolResult)
    assert plain.structured_content == {"answer": "NOTES ON SYNC"}  # ran, answered in the call


async def test_agent_answering_a_tool_error(server: TetherMCPServer) -> None:
    """An agent's MCP-shaped error result is the call's result (`isError`), not a failed run:
    with the tasks extension the task is `completed` with that result."""
    from mcp.client import advertise

    server.add_agent(AgentTool("refusing", "tests.server.mcp_agents:refusing"))
    async with Client(server.sdk, mode="legacy") as client:
        plain = await client.call_tool("refusing", {"goal": "x"})
    assert isinstance(plain, types.CallToolResult) and plain.is_error
    assert isinstance(plain.content[0], types.TextContent)
    assert plain.content[0].text == "cannot do x"
    async with Client(server.sdk, mode="legacy",
                      extensions=[advertise(TASKS_EXTENSION)]) as client:
        made = await raw(client, "tools/call", {"name": "refusing", "arguments": {"goal": "y"}})
        for _ in range(200):
            got = await raw(client, "tasks/get", {"taskId": made["taskId"]})
            if got["status"] != "working":
                break
            await asyncio.sleep(0.05)
    assert got["status"] == "completed" and got["result"]["isError"] is True


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


async def test_2026_wire_details(server: TetherMCPServer) -> None:
    """On 2026-07-28: the legacy `task` param is ignored (a plain tool answers in the call),
    an agent that runs only as a task needs the extension (-32021), tasks/list is gone."""
    async with Client(server.sdk, mode="2026-07-28") as client:
        plain = await raw(client, "tools/call", {"name": "add", "arguments": {"a": 2, "b": 2},
                                                 "task": {"ttl": 1000}})
        with pytest.raises(MCPError) as required:
            await raw(client, "tools/call", {"name": "forever", "arguments": {"goal": "x"}})
        with pytest.raises(MCPError) as listed:
            await raw(client, "tasks/list", {})
    assert plain["content"][0]["text"] == "4" and "task" not in plain
    assert required.value.code == -32021 and listed.value.code == -32601
