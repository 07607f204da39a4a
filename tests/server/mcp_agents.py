"""Tools, agents and a policy served by the MCP server tests (importable by `tether mcp serve`
subprocesses: `--tools tests.server.mcp_agents:TOOLS`).

Every tool records that it ran in the file `$MCP_TEST_RAN` (one line per call), so a test can
tell "refused without running" from "ran and failed".
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tether.runtime import Context
from tether.tools import ToolRegistry

TOOLS = ToolRegistry()

POLICY = """\
name: mcp-tests
rules:
  - id: reads
    tools: [add, lookup]
    effect: allow
  - id: refunds-need-a-human
    tools: [refund]
    effect: approve
  - id: never-delete
    tools: [delete_everything]
    effect: deny
"""


def _ran(name: str) -> None:
    path = os.environ.get("MCP_TEST_RAN")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")


@TOOLS.tool(side_effect="read", idempotent=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    _ran("add")
    return a + b


@TOOLS.tool(side_effect="read")
def lookup(order_id: str) -> dict[str, Any]:
    """Where an order is."""
    _ran("lookup")
    return {"order_id": order_id, "status": "shipped"}


@TOOLS.tool(side_effect="write")
def refund(order_id: str, amount: float) -> dict[str, Any]:
    """Refund an order (a human approves each refund)."""
    _ran("refund")
    return {"refunded": order_id, "amount": amount}


@TOOLS.tool(side_effect="destructive")
def delete_everything(confirm: bool = True) -> str:
    """Drop every table (the policy denies it)."""
    _ran("delete_everything")
    return "deleted"


@TOOLS.tool(side_effect="write")
def unlisted_write(x: int) -> int:
    """No rule names it: deny by default."""
    _ran("unlisted_write")
    return x


async def research(ctx: Context, goal: dict[str, Any]) -> dict[str, Any]:
    """A long-running agent: a journaled step, then a durable timer (the run is a row while it
    sleeps), then the answer."""
    notes = await ctx.step("collect", lambda: f"notes on {goal['goal']}")
    await ctx.sleep(float(goal.get("sleep", 1.5)))
    return {"answer": str(notes).upper()}


async def report(ctx: Context, goal: dict[str, Any]) -> dict[str, Any]:
    """An agent that produces an artifact (a report's bytes) and names it in its result."""
    digest = await ctx.step("write-report", lambda: ctx.store.put_artifact(
        b"\x00report on " + str(goal["goal"]).encode()))
    return {"report": digest}


def _wait_for_gate(gate: str) -> str:
    """Blocks until the file `gate` exists (the test kills the server meanwhile)."""
    _ran("gate-step")
    while not Path(gate).exists():
        import time

        time.sleep(0.05)
    return Path(gate).read_text()


async def gated(ctx: Context, goal: dict[str, Any]) -> dict[str, Any]:
    """An agent whose first step blocks until a file appears: killing the server while it runs
    leaves the step in flight (idempotent, so the next server runs it again)."""
    opened = await ctx.step("wait-for-gate", _wait_for_gate, str(goal["gate"]), idempotent=True)
    return {"goal": goal["goal"], "gate": opened}


async def forever(ctx: Context, goal: dict[str, Any]) -> str:
    """Waits for a signal that never comes (cancelled by the test)."""
    await ctx.wait_for("never")
    return "unreachable"


async def spin(ctx: Context, goal: dict[str, Any]) -> str:
    """Busy in a step until cancelled."""
    async def busy() -> str:
        while True:
            await asyncio.sleep(0.05)

    await ctx.step("busy", busy)
    return "unreachable"


async def broken(ctx: Context, goal: dict[str, Any]) -> str:
    """An agent that fails (a protocol-level failure of its task, not a tool error)."""
    await ctx.step("look", lambda: "nothing")
    raise RuntimeError("no sources found")


async def refusing(ctx: Context, goal: dict[str, Any]) -> dict[str, Any]:
    """An agent that answers as an MCP tool result reporting an error (the agent ran; what it
    was asked could not be done)."""
    await ctx.step("look", lambda: "nothing")
    return {"content": [{"type": "text", "text": f"cannot do {goal['goal']}"}], "isError": True}


def _guards() -> Any:
    from tether.guards import GuardConfig, Guards, loads_policy

    return Guards(GuardConfig(policy=loads_policy(POLICY)), tools=TOOLS)


#: `tether mcp serve --guards tests.server.mcp_agents:GUARDS` (recorded with every run)
GUARDS = _guards()
