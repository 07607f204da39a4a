"""Agents the conformance suite's tasks scenarios (SEP-2663, `io.modelcontextprotocol/tasks`)
call on the server: Tether agents exposed as task-supporting tools, each call a durable run.

The suite runs these scenarios without scoring them (the tasks extension is optional), and
tests/mcp/test_conformance.py does not require them; they are here so that the same run shows
how far Tether's MCP tasks go against the official checks.
"""

from __future__ import annotations

from typing import Any

from tether.runtime import Context

SLOW_COMPUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"seconds": {"type": "number", "minimum": 0},
                   "label": {"type": "string"}},
}
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


async def slow_compute(ctx: Context, args: dict[str, Any]) -> str:
    """Sleeps `seconds` on a durable timer (the run is a row meanwhile), then answers."""
    seconds = float(args.get("seconds") or 0)
    if seconds > 0:
        await ctx.sleep(seconds)
    return f"computed {args.get('label', '')} after {seconds:g}s"


async def failing_job(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Runs, then reports a tool error: the task completes with an error result."""
    await ctx.sleep(1.0)
    return {"content": [{"type": "text", "text": "the job failed"}], "isError": True}


async def protocol_error_job(ctx: Context, args: dict[str, Any]) -> str:
    """Breaks: the run fails, so the task fails with an error, not a result."""
    await ctx.step("start", lambda: "started")
    raise RuntimeError("protocol_error_job broke on purpose")
