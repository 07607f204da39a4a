"""Agents for the progress, follow and retry tests, importable by `tether` subprocesses.

Side effects are lines of the file named by TETHER_TEST_LEDGER, so a test counts what every
process really executed. A step that must not finish before the test says so waits for the file
named by TETHER_TEST_GATE (the test creates it), which proves lines are printed while the run is
still executing rather than at its end.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tether.agents import react
from tether.guards import GuardConfig, Guards, loads_policy
from tether.models import ScriptedModel
from tether.models.messages import ToolCall
from tether.models.scripted import ScriptedCall
from tether.tools import ToolRegistry, tool

POLICY = """\
version: 1
name: progress
rules:
  - id: lookups
    tools: lookup
    effect: allow
"""


def did(what: str) -> None:
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


def done(what: str) -> int:
    """How many times `what` was done, by any process."""
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if not ledger or not os.path.exists(ledger):
        return 0
    with open(ledger, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip() == what)


def wait_for_gate(timeout: float = 60.0) -> None:
    gate = os.environ.get("TETHER_TEST_GATE")
    deadline = time.monotonic() + timeout
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened the gate {gate}")
        time.sleep(0.02)


@tool(side_effect="read")
def lookup(order: str) -> dict[str, Any]:
    """The amount paid for an order (waits for the test's gate first)."""
    wait_for_gate()
    did(f"lookup {order}")
    return {"order": order, "amount": 42}


@tool(side_effect="destructive")
def delete_all() -> str:
    """Delete every order (no policy rule allows it)."""
    did("delete_all")
    return "deleted"


TOOLS = ToolRegistry([lookup, delete_all])
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "progress.yaml")), tools=TOOLS)


def _script(call: ScriptedCall) -> Any:
    """A function of the conversation: the same answer in any process, after any restart."""
    seen = [m for m in call.messages if m.role == "tool"]
    if not seen:
        return ToolCall(id="c1", name="lookup", arguments={"order": "A-7"})
    if len(seen) == 1:
        return ToolCall(id="c2", name="delete_all", arguments={})
    return f"done after {len(seen)} observations"


async def gated_react(ctx: Any, goal: str) -> dict[str, Any]:
    """ReAct under the run's guards: a gated lookup (allowed), a denied delete_all, an answer."""
    return await react(ctx, goal, model=ScriptedModel(fn=_script), tools=TOOLS, max_steps=5)


async def gated_steps(ctx: Any, n: int) -> int:
    """A plain step, then one that waits for the gate, then `n` more."""
    await ctx.step("first", lambda: did("first") or 1)
    await ctx.step("gated", lambda: wait_for_gate() or did("gated") or 2)
    for i in range(n):
        await ctx.step(f"after{i}", lambda: 3)
    return n


# -- retries ----------------------------------------------------------------------------------
def _flaky(what: str) -> None:
    """Fails the first time it executes (in any process), works afterwards."""
    if done(f"{what} attempted") == 0:
        did(f"{what} attempted")
        raise ConnectionError(f"{what}: the payment service is down")
    did(what)


async def flaky_step(ctx: Any, order: str) -> str:
    """Two steps that work, a step that fails once, a last step."""
    await ctx.step("reserve", lambda: did("reserve") or "reserved")
    await ctx.step("price", lambda: did("price") or 42)
    await ctx.step("charge", lambda: _flaky("charge") or "charged")
    await ctx.step("notify", lambda: did("notify") or "sent")
    return f"{order} charged"


@tool(side_effect="write")
def charge_card(order: str) -> str:
    """Charge an order's card (the service is down the first time)."""
    _flaky(f"charge_card {order}")
    return f"charged {order}"


CHARGE = ToolRegistry([charge_card])


async def flaky_tool(ctx: Any, order: str) -> str:
    """A step, then a tool whose failure (a failed result, not an exception) ends the run."""
    await ctx.step("reserve", lambda: did("reserve") or "reserved")
    ctx.log("charging", order=order)
    result = await ctx.tool(CHARGE, "charge_card", {"order": order})
    if not result.ok:
        raise RuntimeError(f"charge failed: {result.error.message if result.error else '?'}")
    return str(result.output)


async def caught_then_fails(ctx: Any, order: str) -> str:
    """A failure the agent handles, then work that succeeds, then a failure in its own code: a
    retry must not run the handled failure again (the journal after it would not match)."""
    try:
        await ctx.step("charge", lambda: _flaky("charge"))
    except Exception:
        await ctx.step("fallback", lambda: did("fallback") or "queued")
    if done("bug fixed") == 0:
        raise ValueError("a bug in the agent's own code")
    return "ok"


async def halting(ctx: Any, n: int) -> int:
    """`gated_steps` with a budget of 2 steps of its own: halts at its third step."""
    ctx.run.options.setdefault("budget", {"steps": 2})
    return await gated_steps(ctx, n)


async def _slow_branch() -> str:
    import asyncio

    did("slow started")
    await asyncio.sleep(0 if done("charge") else 5)  # quick once the charge works
    did("slow done")
    return "slow"


async def gathered(ctx: Any, order: str) -> list[Any]:
    """A step, then a gather whose failing branch cancels its slow sibling."""
    await ctx.step("reserve", lambda: did("reserve") or "reserved")
    return list(await ctx.gather(ctx.step("slow", _slow_branch),
                                 ctx.step("charge", lambda: _flaky("charge") or "charged")))


async def denied_then_raises(ctx: Any, inp: Any) -> str:
    """A call the guards deny (a decision, not a failure), then the agent gives up."""
    result = await ctx.guards.tool(ctx, "delete_all", {}, TOOLS)
    raise RuntimeError(f"not allowed: {result.error.type if result.error else '?'}")


async def counted_child(ctx: Any, i: int) -> int:
    return int(await ctx.step("count", lambda: did(f"child {i}") or i))


async def fans_out(ctx: Any, n: int) -> list[Any]:
    """Spawns `n` children, each one step, and joins them."""
    children = [await ctx.spawn(counted_child, i) for i in range(n)]
    return list(await ctx.gather(*(c.result() for c in children)))
