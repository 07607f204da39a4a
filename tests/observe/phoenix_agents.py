"""The run the Phoenix test, the tracing benchmark and the screenshots trace: importable by
`tether run` / `tether worker` subprocesses by reference.

`triage` is governed by `GUARDS` (declared with the run, so its child is governed too): it spawns
a `research` child that looks the order up, then its own ReAct loop looks the order up again
(allowed), proposes `delete_order` (no policy rule allows it: a guard denial the model reads as
an observation) and answers. The planner says why before each call (its thought: the
"mind-log" a tool span carries). Every model is a `ScriptedModel` whose reply is a function of the
conversation, so a run resumed in another process gets the same replies.
"""

from __future__ import annotations

from typing import Any

from tether.agents import react
from tether.guards import GuardConfig, Guards, loads_policy
from tether.models import ModelResponse, ScriptedModel
from tether.models.messages import ToolCall
from tether.models.scripted import ScriptedCall
from tether.tools import ToolRegistry, tool

POLICY = """\
version: 1
name: support
rules:
  - id: lookups
    tools: lookup_order
    effect: allow
"""


@tool(side_effect="read")
def lookup_order(order: str) -> dict[str, Any]:
    """Where an order is and what was paid."""
    return {"order": order, "status": "shipped", "amount": 42}


@tool(side_effect="destructive")
def delete_order(order: str) -> str:
    """Delete an order (no policy rule allows it)."""
    return f"deleted {order}"


TOOLS = ToolRegistry([lookup_order, delete_order])
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "support.yaml")), tools=TOOLS)


def _researcher(call: ScriptedCall) -> Any:
    if not any(m.role == "tool" for m in call.messages):
        return ToolCall(id="r1", name="lookup_order", arguments={"order": "A-7"})
    return "A-7 shipped; 42 paid."


def _planner(call: ScriptedCall) -> Any:
    seen = [m for m in call.messages if m.role == "tool"]
    if not seen:
        return ModelResponse(text="First check whether A-7 has shipped.",
                             finish_reason="tool_calls",
                             tool_calls=[ToolCall(id="p1", name="lookup_order",
                                                  arguments={"order": "A-7"})])
    if len(seen) == 1:
        return ModelResponse(text="It shipped, so the user wants it deleted.",
                             finish_reason="tool_calls",
                             tool_calls=[ToolCall(id="p2", name="delete_order",
                                                  arguments={"order": "A-7"})])
    return "A-7 has shipped; deleting it is not allowed, so nothing was deleted."


RESEARCHER = ScriptedModel(fn=_researcher, name="scripted-researcher")
PLANNER = ScriptedModel(fn=_planner, name="scripted-planner")


async def research(ctx: Any, order: str) -> dict[str, Any]:
    """The child run: one lookup, one answer."""
    return await react(ctx, f"What happened to order {order}?", model=RESEARCHER, tools=TOOLS,
                       max_steps=3)


async def triage(ctx: Any, goal: str) -> dict[str, Any]:
    """The parent run: a child's research, then a governed ReAct loop with a denied call."""
    child = await ctx.spawn(research, "A-7")
    found = await child.result()
    answer = await react(ctx, f"{goal} (research: {found['answer']})", model=PLANNER,
                         tools=TOOLS, max_steps=5)
    return {"answer": answer["answer"], "research": found["answer"]}
