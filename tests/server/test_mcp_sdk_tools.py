"""Tools registered on the SDK's own server and tools answering MCP content blocks: served
through Tether, each call a journaled run that still gets the live request."""

from __future__ import annotations

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

from tests.server.mcp_support import tool_steps
from tether.server.mcp import TetherMCPServer
from tether.tools import ToolRegistry

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]


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
    reported: list[float] = []
    logs: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

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
    assert reported == [1, 2, 3] and logs == ["counted to 3"]
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
