"""Which budget a guard-related effect counts against, and the guards' journal names.

The names themselves (`tool:`, `guard:`, `approval:`, the `guard` answer marker) are stored in
journals and read by every layer, so they are defined once in `tether.store.vocabulary`; they are
re-exported here for the guards' modules.
"""

from __future__ import annotations

from tether.runtime.interceptors import Effect
from tether.store.vocabulary import ANSWERED, APPROVAL_SIGNAL, GUARD_STEP, TOOL_STEP, step_family

__all__ = ["ANSWERED", "APPROVAL_SIGNAL", "GUARD_STEP", "RETRYABLE", "SCRATCH_KEY", "TOOL_STEP",
           "effect_kind", "guard_kind"]

SCRATCH_KEY = "tether.guards"  # the run's `RunGuardState` in `ctx.scratch`
RETRYABLE = frozenset({"execution_error", "timeout", "http_error"})


def effect_kind(effect: Effect) -> str:
    """The budget kind an effect is charged as: child, model, tool, step or guard (free)."""
    if effect.kind == "spawn":
        return "child"
    name = effect.name
    if effect.kind == "step" and name.startswith(GUARD_STEP):
        return guard_kind(name)
    family = step_family(name)
    return family if family in ("model", "tool") else "step"


def guard_kind(name: str) -> str:
    """An approval request costs a step. Refused proposals cost budget too, or one model
    response with a thousand denied calls would be free — as what they are: tool steps answered
    by the guards, counted like any other tool call."""
    sub = name[len(GUARD_STEP):].split(":", 1)[0]
    return "step" if sub == "approval" else "guard"
