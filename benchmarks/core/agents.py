"""The agents Tether runs in the core benchmarks and the message each node appends."""

from __future__ import annotations

import asyncio
from typing import Any

from tether import Context

_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "


def message(node: str, i: int, size: int) -> dict[str, Any]:
    """The message a node appends; identical to lg_side.message (same bytes on both sides)."""
    content = f"node {node}, step {i}"
    if size > len(content):
        content = (content + " " + _FILLER * (size // len(_FILLER) + 1))[:size]
    return {"role": "assistant", "content": content}


# -- agents (module level: runs name them by reference) ---------------------------------------
async def node(name: str, i: int, size: int) -> dict[str, Any]:
    return message(name, i, size)


async def model_call(name: str, i: int, size: int, sleep: float) -> dict[str, Any]:
    await asyncio.sleep(sleep)  # the simulated model call, inside the durable step
    return message(name, i, size)


async def cycle_agent(ctx: Context, input: dict[str, Any]) -> int:
    """LangGraph's a <-> b cycle as a Tether agent: one journaled step per node execution; the
    step returns the new message (the journal holds the delta), the agent holds the state."""
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, node, name, i, input["size"]))
    return len(messages)


async def model_agent(ctx: Context, input: dict[str, Any]) -> int:
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, model_call, name, i, input["size"], input["sleep"]))
    return len(messages)


async def resume_agent(ctx: Context, input: dict[str, Any]) -> int:
    """The cycle, then a durable wait: the run releases its worker and comes back on a signal."""
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, node, name, i, input["size"]))
    await ctx.wait_for("go")
    return len(messages)

