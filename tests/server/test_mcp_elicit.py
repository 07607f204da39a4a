"""Approvals by elicitation: the client's user, a registered approver, decides a call that waits
for approval; a dismissed question leaves it to the other approvers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from tests.server.mcp_agents import POLICY, TOOLS
from tests.server.mcp_support import calls
from tether.guards import (
    GuardConfig,
    Guards,
    generate_keypair,
    inbox,
    load_private_key,
    loads_policy,
    sign_decision,
)
from tether.runtime import Tether
from tether.server.mcp import ElicitationApprover, TetherMCPServer

#: the shared fixtures (`ran`, `keys`, `server`)
pytest_plugins = ["tests.server.mcp_support"]


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
