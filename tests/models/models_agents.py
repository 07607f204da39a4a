"""Agents for the model replay tests. Module-level so runs can reference them by name.

`MODEL` is swapped by each test; `PROMPT` lets a test change the code's request between runs.
"""

from __future__ import annotations

from typing import Any

from tests.models.models_testlib import ADD
from tether import Context
from tether.models import Message, Model, ScriptedModel

MODEL: Model = ScriptedModel([])
PROMPT = "What is 2 + 3?"


async def tool_loop(ctx: Context, input: Any) -> dict[str, Any]:
    """Ask, run the requested tool, send the result back, then wait for a signal and ask again."""
    history = [Message.system("You add numbers."), Message.user(PROMPT)]
    first = await ctx.model(MODEL, history, tools=[ADD], max_feedback=2)
    call = first.tool_calls[0]
    history += [first.to_message(), Message.tool(call.id, str(sum(call.arguments.values())))]
    second = await ctx.model(MODEL, history, tools=[ADD])
    approval = await ctx.wait_for("go")
    third = await ctx.model(MODEL, [*history, Message.user(f"again? {approval}")])
    return {
        "call": call.model_dump(),
        "answer": second.text,
        "after_signal": third.text,
        "tokens": first.usage.total_tokens + second.usage.total_tokens,
    }
