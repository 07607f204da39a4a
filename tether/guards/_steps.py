"""How guard-related effects are named in the journal and which budget they count against.

The gateway, the interceptor, the journal accounting and the approval inbox must agree on these
names byte for byte (they are stored in journals), so they are defined once, here.
"""

from __future__ import annotations

from tether.runtime.interceptors import Effect

SCRATCH_KEY = "tether.guards"  # the run's `RunGuardState` in `ctx.scratch`
RETRYABLE = frozenset({"execution_error", "timeout", "http_error"})
APPROVAL_SIGNAL = "approval:"
GUARD_STEP = "guard:"
TOOL_STEP = "tool:"  # tether.tools.effect.STEP_PREFIX (not imported: tools load lazily)
# Key marking a tool step's result as the guards' answer (the call did not run). Kept in the
# journaled result, so live and replay classify the step alike; `ToolResult` ignores it.
ANSWERED = "guard"


def effect_kind(effect: Effect) -> str:
    """The budget kind an effect is charged as: child, model, tool, step or guard (free)."""
    if effect.kind == "spawn":
        return "child"
    name = effect.name
    if effect.kind == "step" and name.startswith(GUARD_STEP):
        return guard_kind(name)
    if name.startswith("model:"):
        return "model"
    if name.startswith(TOOL_STEP):
        return "tool"
    return "step"


def guard_kind(name: str) -> str:
    """An approval request costs a step. Refused proposals cost budget too, or one model
    response with a thousand denied calls would be free — as what they are: tool steps answered
    by the guards, counted like any other tool call."""
    sub = name[len(GUARD_STEP):].split(":", 1)[0]
    return "step" if sub == "approval" else "guard"
