"""``python`` and ``bash`` tools for ReAct agents, backed by the sandbox and the run's workspace.

``code_tools(ctx)`` returns two ``@tool`` functions bound to one run. Each call runs in a fresh
sandbox whose ``/workspace`` holds the run's files; changed files become artifacts and the tool's
output carries the new manifest, so the next call (or ``ctx.exec``) sees them.

Tool calls are journaled by ``ctx.tool`` (one step each); a replayed call does not run the tool,
so the current manifest cannot be tracked in memory alone. Instead a live call reads the latest
manifest from the run's journal (the last completed exec or code-tool step), which is durable
before the call starts. Parallel code-tool calls in one turn each start from the same manifest;
the last one to finish wins.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tether.sandbox._types import Language
from tether.sandbox.effect import MANIFEST_KEY, STEP_NAME, ExecContext, _live_exec
from tether.store import vocabulary
from tether.tools import FunctionTool, tool

TOOL_NAMES = ("python", "bash")
_MODEL_FIELDS = ("exit_code", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
                 "timed_out", "error", "files", "workspace_error", "duration_ms")


def latest_manifest(ctx: ExecContext) -> dict[str, str]:
    """The workspace as of the last completed exec of this run (journal order)."""
    manifest: dict[str, str] | None = None
    for event in ctx.store.load_events(ctx.run_id):
        if event.kind != "step_completed" or not isinstance(event.data, dict):
            continue
        if event.name == STEP_NAME and "manifest" in event.data:
            manifest = event.data["manifest"]
        elif event.name in {vocabulary.tool_step(n) for n in TOOL_NAMES}:
            output = event.data.get("output")
            if isinstance(output, dict) and "manifest" in output:
                manifest = output["manifest"]
    if manifest is None:
        manifest = ctx.scratch.get(MANIFEST_KEY, {})
    return dict(manifest or {})


def code_tools(
    ctx: ExecContext, *, backend: str | None = None, timeout: float = 60.0
) -> list[FunctionTool]:
    """The ``python`` and ``bash`` tools for one run (pass them to the run's tool registry)."""

    async def run(code: str, language: Language) -> dict[str, Any]:
        base = latest_manifest(ctx)
        request = {"backend": backend, "language": language, "code": code, "timeout": timeout,
                   "limits": None, "env": None, "stdin": None}
        result = await asyncio.to_thread(_live_exec, ctx.store, base, request, {})
        ctx.scratch[MANIFEST_KEY] = dict(result["manifest"])
        out = {k: result[k] for k in _MODEL_FIELDS}
        out["workspace_files"] = sorted(result["manifest"])
        out["manifest"] = result["manifest"]
        return out

    @tool(name="python", side_effect="write", idempotent=True, timeout=timeout + 30)
    async def python(code: str) -> dict[str, Any]:
        """Run Python 3 code in a fresh sandbox (numpy and pandas installed, no network).

        The working directory /workspace keeps its files between calls; print what you need to
        see (stdout and stderr are returned, truncated when long).

        Args:
            code: a complete Python program
        """
        return await run(code, "python")

    @tool(name="bash", side_effect="write", idempotent=True, timeout=timeout + 30)
    async def bash(script: str) -> dict[str, Any]:
        """Run a bash script in a fresh sandbox (coreutils, no network, no root).

        The working directory /workspace keeps its files between calls.

        Args:
            script: the bash script to run
        """
        return await run(script, "bash")

    return [python, bash]
