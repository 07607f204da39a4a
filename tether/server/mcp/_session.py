"""Tools registered on the SDK server (`server.sdk.tool()`), called as journaled Tether runs.

Some tools need the live MCP request: to log to the client, report progress against the
request's token, ask the client's model (sampling) or its user (elicitation), or answer
`input_required` (multi round-trip requests). They are written with the SDK's own decorator,
which hands them its request `Context`. `SessionTool` wraps each as a Tether `Tool`, so a call
goes the same way as any other: a run in `TETHER_DB`, one `tool:` step through the guards
(listed and allowed by the policy like any tool, side effect from the tool's annotations).

The step reaches the request through `LIVE`, keyed by run id (the run id is the prefix of the
idempotency key every tool step receives). A run whose request is gone — the server restarted,
the client went away — cannot reach it, and its step fails saying so instead of running blind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tether.tools import Tool, ToolExecutionError
from tether.tools._base import coerce_arguments

#: the open request of each session-tool run: run id -> "perform the call now"
LIVE: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {}
#: marks a step output that is an MCP result, answered to the client as is
MCP_RESULT = "mcp_result"


def _side_effect(annotations: dict[str, Any]) -> str:
    if annotations.get("readOnlyHint"):
        return "read"
    if annotations.get("destructiveHint", True) is False:
        return "write"
    return "destructive"  # the MCP default for a tool that does not say


class SessionTool(Tool):
    """A tool of the SDK server, with the metadata its listing gives."""

    kind = "mcp-session"

    def __init__(self, entry: dict[str, Any]) -> None:
        annotations = entry.get("annotations") or {}
        super().__init__(
            name=str(entry["name"]), version="sdk", description=str(entry.get("description") or
                                                                    entry["name"]),
            side_effect=_side_effect(annotations),
            idempotent=bool(annotations.get("idempotentHint", False)), timeout=None, retries=0,
            parameters=dict(entry.get("inputSchema") or {"type": "object"}),
            accepts_idempotency_key=True, source=f"mcp-sdk:{entry['name']}")
        self.entry = entry

    def validate(self, arguments: Any) -> dict[str, Any]:
        """The SDK validates against its own schema when the call reaches it."""
        return coerce_arguments(self.name, arguments, repair=False)

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        run_id = (idempotency_key or "").partition(":")[0]
        perform = LIVE.get(run_id)
        if perform is None:
            raise ToolExecutionError(self.name, (
                f"tool {self.name!r} needs the MCP request that called it, and that request is "
                "gone (the client disconnected or the server restarted); call it again"))
        return {MCP_RESULT: await perform()}
