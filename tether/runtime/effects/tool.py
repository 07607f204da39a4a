"""Tool calls as journaled effects: ``ctx.tool(...)`` is built on ``ctx.step(...)`` here.

Every call, including a rejected one (unknown tool, invalid arguments), is one journaled step
named ``tool:<name>`` whose result is a :class:`ToolResult` as JSON, so the trace shows what the
model proposed and what it was told, and replay hands back exactly the same observation.
Tool failures are *results* (``ok=False``), not exceptions: an agent shows them to the model.

Interceptors see ``Effect(kind="step", name="tool:<name>", args=(arguments,), meta={"kind":
"tool", "tool", "version", "side_effect", "idempotent"[, "rejected"]})``. What the step needs to
know about a tool (its name prefix, time bound and metadata) is the tool layer's own
(``tether.tools.effect``); this module adds the journal. A tool that declares ``resources`` is
a heavy step (``Resources(**tool.resources)``): a worker with a Ray executor runs the call as a
Ray task, any other worker in its own process, as before.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from pydantic import ValidationError

from tether.store import dumps
from tether.tools._base import Tool, ToolFailure, ToolResult
from tether.tools._errors import ToolError
from tether.tools._registry import ToolRegistry
from tether.tools.effect import STEP_PREFIX, effect_meta, step_timeout

from .._views import StepView
from ..errors import ActivityError
from ..executors import Resources

#: the most JSON an in-doubt-able call's start records of its arguments (`journal_arguments`)
ARGUMENTS_JOURNAL_MAX = 16 * 1024


async def tool_effect(
    ctx: StepView,
    registry_or_tool: ToolRegistry | Tool,
    name: str | None,
    arguments: Any,
    *,
    version: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ToolResult:
    """Call a tool through the journal and return its :class:`ToolResult`.

    ``registry_or_tool`` is a registry (``name`` selects the tool, newest version unless
    ``version``) or a single tool (``name`` may be ``None`` or must match it). The step is marked
    idempotent when the tool is, and a tool with an ``idempotency_key`` parameter receives the
    runtime's ``run_id:seq`` key, which stays the same across replays and retries. ``meta`` is
    added to the step's effect meta, for interceptors (the guards' verdict on a gateway call
    travels this way).
    """
    tool: Tool | None = None
    rejection: ToolResult | None = None
    if isinstance(registry_or_tool, Tool):
        tool = registry_or_tool
        if name is not None and name != registry_or_tool.name:
            raise ValueError(
                f"tool_effect got tool {registry_or_tool.name!r} but name {name!r}; "
                "pass name=None or the tool's own name"
            )
        step_name = STEP_PREFIX + registry_or_tool.name
    elif isinstance(registry_or_tool, ToolRegistry):
        if not isinstance(name, str) or not name:
            raise ValueError("tool_effect needs a tool name when given a registry")
        step_name = STEP_PREFIX + name
        try:
            tool = registry_or_tool.get(name, version)
        except ToolError as e:
            rejection = ToolResult.failure(name, e)
    else:
        raise TypeError(
            f"tool_effect expects a ToolRegistry or a Tool, got {type(registry_or_tool).__name__}"
        )

    if tool is not None:
        try:
            tool.validate(arguments)
        except ToolError as e:
            rejection = ToolResult.failure(tool.name, e)
        else:
            # the step records the arguments as proposed (what policy and approvals judged);
            # the tool validates them again when it runs, filling in defaults
            return await _live_call(ctx, tool, step_name, _plain(arguments), meta)

    # Rejected before execution: still journaled (the model's mistake is part of the trace),
    # and idempotent, because nothing outside the journal happens.
    assert rejection is not None
    recorded = rejection.model_dump(mode="json")

    def reject(_arguments: Any) -> dict[str, Any]:
        return recorded

    base = effect_meta(tool) if tool is not None else {"kind": "tool", "tool": name}
    base["rejected"] = rejection.error.type if rejection.error else "rejected"
    # never run, never in doubt: the arguments a caller gave for the journal are not recorded
    kept = {k: v for k, v in (meta or {}).items() if k != "arguments"}
    data = await ctx.step(step_name, reject, _plain(arguments), idempotent=True,
                          meta={**base, **kept})
    return ToolResult.model_validate(data)


async def _run_tool(tool: Tool, arguments: Any) -> dict[str, Any]:
    result = await tool.run(arguments)
    return result.model_dump(mode="json")


async def _run_tool_with_key(tool: Tool, arguments: Any,
                             idempotency_key: str | None = None) -> dict[str, Any]:
    result = await tool.run(arguments, idempotency_key=idempotency_key)
    return result.model_dump(mode="json")


async def _live_call(ctx: StepView, tool: Tool, step_name: str, args: Any,
                     extra_meta: dict[str, Any] | None) -> ToolResult:
    # a module-level function bound to the tool (not a closure): a heavy tool's call is pickled
    # to a Ray worker, and the step's args stay `(arguments,)` for interceptors and the journal
    fn = functools.partial(_run_tool_with_key if tool.accepts_idempotency_key else _run_tool,
                           tool)
    resources = Resources(**tool.resources) if tool.resources is not None else None
    meta = {**effect_meta(tool), **(extra_meta or {})}
    if tool.idempotent or tool.accepts_idempotency_key:
        meta.pop("arguments", None)  # re-run, never in doubt: nothing to identify it by
    else:
        # a crash during the call leaves it in doubt, and the operator who decides whether it
        # acted must see which call it was: its arguments go with its durable start, as the
        # caller gives them for the journal (the guards: as the model proposed them, PII still
        # masked) or else as the tool gets them
        meta["arguments"] = journal_arguments(meta.get("arguments", args))
    try:
        data = await ctx.step(
            step_name,
            fn,
            args,
            # a tool that takes the key deduplicates repeats itself, so an in-doubt call may be
            # re-run (design §3); otherwise only a declared-idempotent tool is re-run
            idempotent=tool.idempotent or tool.accepts_idempotency_key,
            timeout=step_timeout(tool),
            resources=resources,
            meta=meta,
        )
    except ActivityError as e:
        # Only the runtime's own bound (or a crash of the wrapper) lands here; tool errors are
        # already results. Recorded as step_failed, so replay raises and converts identically.
        kind = "timeout" if "timeout" in e.error_type.lower() else "execution_error"
        return ToolResult(
            tool=tool.name,
            ok=False,
            error=ToolFailure(type=kind, message=e.message, exception=e.error_type),
        )
    try:
        return ToolResult.model_validate(data)
    except ValidationError:
        # not what a call journals: an operator's `tether resolve --skip --result VALUE` of an
        # in-doubt call, VALUE being what the tool returned (its output). Read as a failure it
        # failed the run, and neither a retry (which replays it) nor resolve could mend it
        return ToolResult(tool=tool.name, ok=True, output=data)


def journal_arguments(arguments: Any) -> Any:
    """`arguments` as an in-doubt step's start records them: whole up to
    `ARGUMENTS_JOURNAL_MAX` bytes of JSON, else their size and digest (enough to match the call
    against the tool's own records, without a 10 MB file body in every start)."""
    try:
        encoded = dumps(arguments)
    except (TypeError, ValueError) as exc:  # orjson's error is a TypeError
        return {"omitted": f"not JSON: {exc}"}
    if len(encoded) <= ARGUMENTS_JOURNAL_MAX:
        return arguments
    return {"omitted": f"over {ARGUMENTS_JOURNAL_MAX} bytes", "bytes": len(encoded),
            "sha256": hashlib.sha256(encoded).hexdigest()}


def _plain(arguments: Any) -> Any:
    """Arguments as the model sent them, in a JSON-safe form for the journal."""
    if isinstance(arguments, dict | list | str | int | float | bool) or arguments is None:
        return arguments
    return repr(arguments)
