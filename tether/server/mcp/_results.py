"""What a finished Tether run answers over MCP: a `CallToolResult`, and the run as a `Task`.

One translation for both ways of calling (a plain `tools/call` and `tasks/result`), so a task's
result is exactly what the same call would have answered without a task.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mcp_types as types
import orjson

from tether.store import RunRecord

#: the `_meta` key relating a message to its task (MCP 2025-11-25, tasks)
RELATED_TASK = "io.modelcontextprotocol/related-task"
#: where a run records that MCP created it (`options["mcp"]`)
MCP_OPTION = "mcp"
#: suggested polling interval for clients of a task, in milliseconds
POLL_INTERVAL_MS = 500

_TASK_STATUS = {
    "queued": "working", "running": "working", "waiting": "working",
    "succeeded": "completed", "failed": "failed", "halted": "failed",
    "cancelled": "cancelled",
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def call_result(run: RunRecord) -> types.CallToolResult:
    """A finished run as the answer to the `tools/call` that created it.

    A tool-call run returns a `ToolResult` (a refusal by the policy is a failed one: the client
    reads why, as a model would); an agent run returns whatever its agent returned. A run that
    did not succeed is an error result naming its status and why, not a protocol error: the
    call was valid, its execution was not."""
    meta = {RELATED_TASK: {"taskId": run.id}} if _is_task(run) else None
    if run.status != "succeeded":
        why = run.error or run.reason or "no reason recorded"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"run {run.id} {run.status}: {why}")],
            is_error=True, _meta=meta)
    value = run.result
    if _is_tool_call(run) and isinstance(value, dict) and "ok" in value:
        if not value["ok"]:
            error = value.get("error") or {}
            text = f"ERROR ({error.get('type', 'error')}): {error.get('message', '')}"
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                        is_error=True, _meta=meta)
        value = value.get("output")
    structured = value if isinstance(value, dict) else None
    return types.CallToolResult(content=[types.TextContent(type="text", text=_text(value))],
                                structured_content=structured, is_error=False, _meta=meta)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _mcp(run: RunRecord) -> dict[str, Any]:
    value = run.options.get(MCP_OPTION)
    return value if isinstance(value, dict) else {}


def _is_task(run: RunRecord) -> bool:
    return bool(_mcp(run).get("task"))


def _is_tool_call(run: RunRecord) -> bool:
    return _mcp(run).get("kind") == "tool"


def task_status(run: RunRecord) -> str:
    return _TASK_STATUS.get(run.status, "working")


def task_of(run: RunRecord) -> types.Task:
    """The run seen as an MCP task: its id is the run id, so `tether show` finds it too."""
    message = run.error or run.reason
    if run.status == "waiting" and run.reason:
        message = f"waiting: {run.reason}"
    ttl = _mcp(run).get("ttl")
    return types.Task(
        task_id=run.id, status=task_status(run),  # type: ignore[arg-type]
        status_message=message, created_at=_iso(run.created_at),
        last_updated_at=_iso(run.updated_at or run.created_at),
        ttl=ttl if isinstance(ttl, int) else None, poll_interval=POLL_INTERVAL_MS)
