"""What the in-process MCP server tests share: the agents served, the server under the
example policy, the approver's keys, a marker file the tools write when they run, and a raw
request for methods the SDK client has no call for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.server.mcp_agents import POLICY, TOOLS
from tether.guards import (
    GuardConfig,
    Guards,
    KeyRegistry,
    generate_keypair,
    load_private_key,
    loads_policy,
)
from tether.runtime import Tether
from tether.server.mcp import AgentTool, ElicitationApprover, TetherMCPServer

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


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request the SDK client has no method for (tasks are not in its 2.3 API)."""
    result: dict[str, Any] = await client.session._dispatcher.send_raw_request(
        method, params, {})
    return result


def tool_steps(tether: Tether, run_id: str) -> list[Any]:
    return [e for e in tether.events(run_id)
            if e.kind == "step_started" and str(e.name).startswith("tool:")]
