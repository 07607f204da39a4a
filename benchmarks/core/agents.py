"""The agents Tether runs in the core benchmarks and the message each node appends.

Two flavours of message, matching LangGraph's two states in `lg_side.py` (the `kind` input):
- "message" (the default): Tether's chat message type, `tether.Message`, journaled as its JSON
  and held by the agent as `Message` objects — as LangGraph's `MessagesState` holds `AIMessage`s;
- "dict": a plain `{"role", "content"}` dict, the same bytes as LangGraph's plain-dict state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tether import Context, Message

from .messages import message


def new_message(kind: str, node: str, i: int, size: int) -> dict[str, Any]:
    """What a step returns (steps return JSON data): a `Message`'s JSON, or the plain dict."""
    if kind == "message":
        return Message.assistant(message(node, i, size)["content"]).model_dump(mode="json")
    if kind == "dict":
        return message(node, i, size)
    raise ValueError(f"unknown message kind {kind!r}: use 'message' or 'dict'")


def _held(kind: str, data: dict[str, Any]) -> Message | dict[str, Any]:
    return Message.model_validate(data) if kind == "message" else data


# -- agents (module level: runs name them by reference) ---------------------------------------
async def node(name: str, i: int, size: int, kind: str = "message") -> dict[str, Any]:
    return new_message(kind, name, i, size)


async def model_call(name: str, i: int, size: int, sleep: float,
                     kind: str = "message") -> dict[str, Any]:
    await asyncio.sleep(sleep)  # the simulated model call, inside the durable step
    return new_message(kind, name, i, size)


async def _cycle(ctx: Context, input: dict[str, Any], fn: Any, *extra: Any) -> int:
    """LangGraph's a <-> b cycle as a Tether agent: one journaled step per node execution; the
    step returns the new message (the journal holds the delta), the agent holds the state."""
    kind = input.get("kind", "message")
    messages: list[Message | dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(_held(kind, await ctx.step(name, fn, name, i, input["size"], *extra,
                                                   kind)))
    return len(messages)


async def cycle_agent(ctx: Context, input: dict[str, Any]) -> int:
    return await _cycle(ctx, input, node)


async def model_agent(ctx: Context, input: dict[str, Any]) -> int:
    return await _cycle(ctx, input, model_call, input["sleep"])


async def resume_agent(ctx: Context, input: dict[str, Any]) -> int:
    """The cycle, then a durable wait: the run releases its worker and comes back on a signal."""
    steps = await _cycle(ctx, input, node)
    await ctx.wait_for("go")
    return steps
