"""Agents driven by module-level scripted models, as a test suite writes them: every worker
process that imports this module gets a fresh copy of each script."""

from __future__ import annotations

from typing import Any

from tether.models import Message, ScriptedModel, tool_call

TEXT_SCRIPT = ScriptedModel(["first answer", "second answer", "third answer"])

REFUND_SCRIPT = ScriptedModel([
    tool_call("refund", {"order": "A-1"}),
    tool_call("refund", {"order": "A-2"}),
    "done",
])


async def asks_twice_around_a_signal(ctx: Any, _: Any) -> list[str | None]:
    first = await ctx.model(TEXT_SCRIPT, [Message.user("one")], validate=False)
    await ctx.wait_for("go")
    second = await ctx.model(TEXT_SCRIPT, [Message.user("two")], validate=False)
    return [first.text, second.text]


async def refunds_with_approval(ctx: Any, _: Any) -> list[Any]:
    """Each proposed refund waits for a signal: a resumed script must not propose A-1 again."""
    proposed: list[Any] = []
    history = [Message.user("refund the orders")]
    for _round in range(3):
        reply = await ctx.model(REFUND_SCRIPT, history, validate=False)
        if not reply.tool_calls:
            proposed.append(reply.text)
            return proposed
        order = reply.tool_calls[0].arguments["order"]
        proposed.append(order)
        await ctx.wait_for(f"approve-{order}")
        history = [*history, Message.user(f"refunded {order}")]
    return proposed
