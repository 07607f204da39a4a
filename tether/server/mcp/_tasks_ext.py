"""The tasks extension of MCP 2026-07-28 (`io.modelcontextprotocol/tasks`, SEP-2663), on the
same runs as the 2025-11-25 task methods (`_tasks`).

2026-07-28 took tasks out of the core protocol into an extension with another wire: the server
decides which calls become tasks (here: calls of an exposed agent, which may run for long), the
answer to such a `tools/call` is a flat `CreateTaskResult` (`resultType: "task"`, `taskId`,
`ttlMs`, `pollIntervalMs`), `tasks/get` inlines the call's `result` once completed (or the
protocol `error` of a run that failed), there is no `tasks/result`, and `tasks/cancel` answers an
empty acknowledgement. A client speaks this wire when it declared the extension — in its
`initialize` capabilities or per request in `_meta` — and the 2025-11-25 one otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import HEADER_MISMATCH, INTERNAL_ERROR, MISSING_REQUIRED_CLIENT_CAPABILITY

from tether.server.mcp._results import RELATED_TASK, call_result, task_of

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from tether.store import RunRecord

EXTENSION = "io.modelcontextprotocol/tasks"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"


def declared_in(capabilities: Any) -> bool:
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else \
        getattr(capabilities, "extensions", None)
    return isinstance(extensions, dict) and EXTENSION in extensions


def speaks_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client negotiated the extension (session or per request)."""
    meta = (ctx.params or {}).get("_meta")
    if isinstance(meta, dict) and declared_in(meta.get(CLIENT_CAPABILITIES_META)):
        return True
    caps = ctx.session.client_capabilities
    return caps is not None and declared_in(caps.model_dump(by_alias=True))


def modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    """A 2026-07-28 request: tasks exist there only as the extension."""
    return not str(ctx.protocol_version).startswith(("2024", "2025"))


def refuse_undeclared(what: str) -> MCPError:
    return MCPError(MISSING_REQUIRED_CLIENT_CAPABILITY, f"{what} needs the {EXTENSION} "
                    "extension, which this client did not declare (capabilities.extensions)",
                    {"requiredCapabilities": {"extensions": {EXTENSION: {}}}})


def check_name_header(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    """An `Mcp-Name` HTTP header (SEP-2243) must name the task the body names: a proxy routing
    on the header must not be steered to one task while the server acts on another."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return
    named = headers.get("mcp-name")
    if named is None:
        return
    decoded = named
    if named.startswith("=?base64?") and named.endswith("?="):
        import base64
        import binascii

        try:
            decoded = base64.b64decode(named[9:-2]).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = named
    if decoded != task_id:
        raise MCPError(HEADER_MISMATCH, f"the Mcp-Name header ({named!r}) does not match the "
                       f"taskId of the request ({task_id!r})")


def task_fields(run: RunRecord) -> dict[str, Any]:
    task = task_of(run)
    out: dict[str, Any] = {"taskId": task.task_id, "status": task.status,
                           "createdAt": task.created_at, "lastUpdatedAt": task.last_updated_at,
                           "ttlMs": task.ttl, "pollIntervalMs": task.poll_interval}
    if task.status_message:
        out["statusMessage"] = task.status_message
    return out


def created(run: RunRecord) -> dict[str, Any]:
    """The flat `CreateTaskResult` a task-creating `tools/call` answers."""
    return {"resultType": "task", **task_fields(run)}


def detailed(run: RunRecord) -> dict[str, Any]:
    """`tasks/get`: the task, with its result inlined when completed. A tool that failed
    completed (its result says `isError`); a run that failed is the task's protocol error."""
    out = {"resultType": "complete", **task_fields(run)}
    if run.status == "succeeded":
        result = call_result(run)
        meta = {k: v for k, v in (result.get("_meta") or {}).items() if k != RELATED_TASK}
        result.pop("_meta", None)
        if meta:
            result["_meta"] = meta
        out["result"] = result
    elif run.status in ("failed", "halted"):
        out["error"] = {"code": INTERNAL_ERROR,
                        "message": f"run {run.id} {run.status}: "
                                   f"{run.error or run.reason or 'no reason recorded'}"}
    return out
