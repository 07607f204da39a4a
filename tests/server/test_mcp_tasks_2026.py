"""The 2026-07-28 wire: the tasks extension (SEP-2663) for a client that declares it, and what a
client that does not declare it gets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.server.mcp_support import raw
from tether.server.mcp import AgentTool, TetherMCPServer

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]


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
