"""Agents and tools used by the journaled tool-call tests (module-level so runs can name them).

`CALLS` counts live executions of each tool, so tests can prove replay never repeats one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tether import Context
from tether.runtime.effects.tool import tool_effect
from tether.tools import ToolRegistry, tool

CALLS: Counter[str] = Counter()
KEYS: list[str | None] = []

registry = ToolRegistry()


@registry.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    CALLS["add"] += 1
    return a + b


@registry.tool(side_effect="write", idempotent=False)
async def send_email(to: str, body: str, idempotency_key: str | None = None) -> dict[str, Any]:
    """Send an email (a side effect that must never happen twice)."""
    CALLS["send_email"] += 1
    KEYS.append(idempotency_key)
    return {"sent_to": to, "key": idempotency_key}


@registry.tool(side_effect="write")
def fragile(x: int) -> int:
    """Always fails."""
    CALLS["fragile"] += 1
    raise RuntimeError(f"fragile broke on {x}")


@registry.tool(timeout=0.05)
async def sluggish() -> str:
    """Too slow for its own timeout."""
    CALLS["sluggish"] += 1
    await asyncio.sleep(2)
    return "late"


def reset() -> None:
    CALLS.clear()
    KEYS.clear()


async def uses_tools(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Calls good, bad, unknown, failing and slow tools; then waits for a signal, which forces
    a full replay when the run resumes."""
    out: dict[str, Any] = {}
    out["sum"] = (await ctx.tool(registry, "add", {"a": inp["a"], "b": 2})).model_dump()
    mail = await ctx.tool(registry, "send_email", {"to": "x@y.z", "body": "hi"})
    out["mail"] = mail.model_dump()
    out["invalid"] = (await ctx.tool(registry, "add", {"a": "one"})).model_dump()
    out["unknown"] = (await ctx.tool(registry, "substract", {"a": 1})).model_dump()
    out["failed"] = (await ctx.tool(registry, "fragile", {"x": 7})).model_dump()
    out["slow"] = (await ctx.tool(registry, "sluggish", {})).model_dump()
    out["signal"] = await ctx.wait_for("go")
    out["after"] = (await ctx.tool(registry, "add", {"a": 40, "b": 2})).model_dump()
    return out


async def parallel_tools(ctx: Context, n: int) -> list[Any]:
    results = await ctx.gather(*(ctx.tool(registry, "add", {"a": i, "b": i}) for i in range(n)))
    return [r.output for r in results]


@tool
def echo(text: str) -> str:
    """Return the text."""
    return text


async def single_tool(ctx: Context, text: str) -> dict[str, Any]:
    return (await tool_effect(ctx, echo, None, {"text": text})).model_dump()


@tool(side_effect="destructive", critical=True)
def wire(to: str, amount: int = 10) -> str:
    """Send money (two signed approvals needed)."""
    return to


async def approval_tools(ctx: Context, _: Any) -> list[Any]:
    a = await ctx.tool(registry, "add", {"a": "1", "b": 1})
    w = await ctx.tool(wire, "wire", {"to": "x"})
    return [a.output, w.output]
