"""MCP tools under the guards like any tool: a call the policy sends to approval waits durably
(no process holds the run) and, once approved, reaches the server exactly once; a tool-call
budget halts the run before the call that would exceed it reaches the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.guards.e2e_support import APPROVERS, open_tether, say
from tests.guards.test_e2e_approvals import _decision
from tether.guards import BudgetLimits, GuardConfig, Guards, inbox, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.tools.mcp import MCPTools

from .mcp_support import test_server

STATE: dict[str, Any] = {}
POLICY = """
name: notes
rules:
  - {id: lookups, tools: lookup, effect: allow}
  - {id: notes, tools: record, effect: approve}
"""


async def governed_react(ctx: Any, goal: str) -> Any:
    from tether.agents import react

    return await react(ctx, goal, model=STATE["model"], tools=STATE["registry"],
                       guards=STATE["guards"], max_steps=5)


def _ledger(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_an_mcp_call_needing_approval_waits_then_runs_once(db_path: str, tmp_path: Path
                                                                 ) -> None:
    ledger = tmp_path / "ledger.txt"
    async with MCPTools([test_server(ledger=ledger)]) as mcp:
        STATE["registry"] = registry = mcp.registry(names=["lookup", "record"])
        STATE["guards"] = guards = Guards(
            GuardConfig(policy=loads_policy(POLICY, "notes.yaml"), approvers=APPROVERS),
            tools=registry)
        STATE["model"] = ScriptedModel([
            say("", tool_call("lookup", {"city": "Lima"})),
            say("", tool_call("record", {"note": "Lima has 10 million people"})),
            "Noted.",
        ])
        t = open_tether(db_path, guards)
        run = await t.run(governed_react, "Look Lima up and note its population.")
        assert run.status == "waiting", run.error
        assert _ledger(ledger) == []  # nothing reached the server before the decision
        (pending,) = inbox.list_pending(t.store)
        assert pending.request.tool == "record"
        req = pending.request
        assert inbox.decide(t, _decision(req.id, req.digest, "carol"), APPROVERS) == "approved"
        done = await t.drive(run.id)
        assert done.status == "succeeded", done.error
        assert done.result["answer"] == "Noted."
        assert _ledger(ledger) == ["Lima has 10 million people"]  # once
        live = [e for e in t.events(run.id) if e.kind == "step_started"
                and e.name == "tool:record" and "short_circuit" not in (e.data or {})]
        assert len(live) == 1
        t.close()


async def test_a_tool_call_budget_halts_before_the_server_is_called(db_path: str, tmp_path: Path
                                                                     ) -> None:
    ledger = tmp_path / "ledger.txt"
    policy = loads_policy("name: all\nrules:\n  - {id: any, tools: record, effect: allow}\n",
                          "all.yaml")
    async with MCPTools([test_server(ledger=ledger)]) as mcp:
        STATE["registry"] = registry = mcp.registry(names=["record"])
        STATE["guards"] = guards = Guards(
            GuardConfig(policy=policy, run_limits=BudgetLimits(tool_calls=2)), tools=registry)
        STATE["model"] = ScriptedModel([
            say("", tool_call("record", {"note": f"n{i}"})) for i in range(5)])
        t = open_tether(db_path, guards)
        run = await t.run(governed_react, "Write notes forever.")
        assert run.status == "halted", (run.status, run.error)
        assert _ledger(ledger) == ["n0", "n1"]
        t.close()
