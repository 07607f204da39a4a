"""What a finished Tether run answers over MCP: a `CallToolResult`, and the run as a `Task`.

One translation for both ways of calling (a plain `tools/call` and `tasks/result`), so a task's
result is exactly what the same call would have answered without a task.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mcp_types as types
import orjson
from pydantic import TypeAdapter, ValidationError

from tether.server.mcp._session import MCP_RESULT
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


def call_result(run: RunRecord) -> dict[str, Any]:
    """A finished run as the answer (wire JSON) to the `tools/call` that created it.

    A tool-call run returns a `ToolResult` (a refusal by the policy is a failed one: the client
    reads why, as a model would); an agent run returns whatever its agent returned. A run that
    did not succeed is an error result naming its status and why, not a protocol error: the
    call was valid, its execution was not. A tool that returns MCP content blocks (an image, an
    embedded resource...) is answered with those blocks; a tool of the SDK server
    (`_session`) with the SDK's own answer."""
    meta = {RELATED_TASK: {"taskId": run.id}} if _is_task(run) else None
    if run.status != "succeeded":
        why = run.error or run.reason or "no reason recorded"
        return _wire(types.CallToolResult(
            content=[types.TextContent(type="text", text=f"run {run.id} {run.status}: {why}")],
            is_error=True, _meta=meta))
    value = run.result
    if _is_tool_call(run) and isinstance(value, dict) and "ok" in value:
        if not value["ok"]:
            error = value.get("error") or {}
            text = f"ERROR ({error.get('type', 'error')}): {error.get('message', '')}"
            return _wire(types.CallToolResult(
                content=[types.TextContent(type="text", text=text)], is_error=True, _meta=meta))
        value = value.get("output")
        if isinstance(value, dict) and isinstance(value.get(MCP_RESULT), dict):
            answer = dict(value[MCP_RESULT])
            if meta is not None:
                answer["_meta"] = {**(answer.get("_meta") or {}), **meta}
            return answer
    if not _is_tool_call(run) and isinstance(value, dict) and \
            content_blocks(value.get("content")) is not None:
        # an agent that answers as an MCP tool result (content blocks, maybe isError)
        answer = _wire(types.CallToolResult(
            content=content_blocks(value["content"]) or [],
            structured_content=value.get("structuredContent"),
            is_error=bool(value.get("isError", False)), _meta=meta))
        return answer
    blocks = content_blocks(value)
    if blocks is not None:
        return _wire(types.CallToolResult(content=blocks, is_error=False, _meta=meta))
    return text_result(_text(value), value if isinstance(value, dict) else None, meta)


def text_result(text: str, structured: dict[str, Any] | None,
                meta: dict[str, Any] | None) -> dict[str, Any]:
    """`_wire(CallToolResult(content=[TextContent(text)], structuredContent=structured,
    isError=False, _meta=meta))` written directly — the answer of nearly every call, whose
    values are already JSON (read back from the journal): building the SDK's model to dump it
    at once cost every call a validation and a serialization. A test holds the two equal, key
    order included."""
    answer: dict[str, Any] = {"_meta": meta} if meta is not None else {}
    answer["content"] = [{"type": "text", "text": text}]
    if structured is not None:
        answer["structuredContent"] = structured
    answer["isError"] = False
    answer["resultType"] = "complete"
    return answer


_BLOCK_TYPES = frozenset({"text", "image", "audio", "resource", "resource_link"})
_BLOCKS: TypeAdapter[list[types.ContentBlock]] = TypeAdapter(list[types.ContentBlock])


def content_blocks(value: Any) -> list[types.ContentBlock] | None:
    """`value` as MCP content blocks if that is what the tool returned (one block or a list;
    the journal holds them as JSON), else None."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, dict) and i.get("type") in _BLOCK_TYPES
                            for i in items):
        return None
    try:
        return _BLOCKS.validate_python(items)
    except ValidationError:
        return None


def _wire(result: types.CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


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
