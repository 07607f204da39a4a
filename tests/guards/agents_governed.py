"""Agents whose guards travel with the run: importable by reference from `tether worker` processes.

Nothing here installs the guards: a run records `--guards tests.guards.agents_governed:GUARDS`,
and whichever worker executes it loads them. Side effects are counted as lines of the file named
by TETHER_TEST_LEDGER, so a test sees what every process really did.
"""

from __future__ import annotations

import os
from typing import Any

from tether.agents import react
from tether.guards import GuardConfig, Guards, KeyRegistry, load_key_registry, loads_policy
from tether.models import ScriptedModel
from tether.models.messages import ToolCall
from tether.models.scripted import ScriptedCall
from tether.tools import ToolRegistry, tool

POLICY = """\
version: 1
name: refunds
rules:
  - id: lookups
    tools: lookup_order
    effect: allow
  - id: big-refunds
    tools: refund
    effect: approve
    args:
      amount: {min: 100}
  - id: small-refunds
    tools: refund
    effect: allow
"""


def _did(what: str) -> None:
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


@tool(side_effect="read")
def lookup_order(order: str) -> dict[str, Any]:
    """The amount paid for an order."""
    _did(f"lookup {order}")
    return {"order": order, "amount": 500}


@tool(side_effect="write")
def refund(order: str, amount: float) -> str:
    """Refund an order."""
    _did(f"refund {order} {amount}")
    return f"REFUND EXECUTED: {amount} for {order}"


def _approvers() -> KeyRegistry:
    """The approvers every process of the deployment knows: the file `tether approve` reads
    (TETHER_APPROVERS). A worker accepts only decisions signed by one of them."""
    path = os.environ.get("TETHER_APPROVERS")
    return load_key_registry(path) if path else KeyRegistry()


TOOLS = ToolRegistry([lookup_order, refund])
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "refunds.yaml"), approvers=_approvers()),
                tools=TOOLS)


def _script(call: ScriptedCall) -> Any:
    """A function of the conversation, not a queue: a resumed run in a new process asks the
    model the same way and gets the same answer, whatever happened before the restart."""
    seen = [m for m in call.messages if m.role == "tool"]
    if not seen:
        return ToolCall(id="c1", name="lookup_order", arguments={"order": "A-7"})
    if len(seen) == 1:
        return ToolCall(id="c2", name="refund", arguments={"order": "A-7", "amount": 500})
    return f"done: {seen[-1].content}"


MODEL = ScriptedModel(fn=_script)


async def governed_refund(ctx: Any, goal: str) -> dict[str, Any]:
    """ReAct with no guards= argument: it runs under whatever guards the run declared."""
    return await react(ctx, goal, model=MODEL, tools=TOOLS, max_steps=5)


async def direct_refund(ctx: Any, order: str) -> str:
    """Agent code that calls the tool directly, past any gateway."""
    result = await ctx.tool(TOOLS, "refund", {"order": order, "amount": 500})
    return str(result.output)
