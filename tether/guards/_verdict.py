"""`ToolVerdict`: the gateway's decision on one proposed tool call, carried in that call's effect.

`Guards.tool` decides (policy, approvals) before the call's `tool:<name>` step; the interceptor
acts on the decision in that step's `before`. The verdict travels in the step's own `Effect.meta`
(under `VERDICT`), and the interceptor takes it out before the step is journaled (the policy
decision it carries is journaled instead). Since it belongs to that one effect, it cannot clear
any other call — a later direct `ctx.tool`, a concurrent `ctx.gather` branch proposing the same
call — live or replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.guards._steps import ANSWERED, TOOL_STEP
from tether.runtime.interceptors import Effect
from tether.tools import ToolFailure, ToolResult

VERDICT = "guards.verdict"  # the key of the verdict in `Effect.meta`, never journaled


@dataclass
class ToolVerdict:
    """The policy decision on one call (journaled in its step's `step_started` meta) and, when
    the call must not run, the answer the step returns instead (`guard` says who answered)."""

    tool: str
    policy: dict[str, Any]
    answer: dict[str, Any] | None = None
    guard: str = ""

    def attach(self, meta: dict[str, Any] | None) -> dict[str, Any]:
        """`meta` for the call's step, carrying this verdict."""
        return {**(meta or {}), VERDICT: self}

    @staticmethod
    def take(effect: Effect) -> ToolVerdict | None:
        """The verdict the gateway attached to this tool step (removed from its meta), or None
        when agent code made the call without the gateway."""
        verdict = effect.meta.pop(VERDICT, None)
        if not isinstance(verdict, ToolVerdict) or effect.name != TOOL_STEP + verdict.tool:
            return None
        return verdict


def tool_answer(name: str, guard: str, *, ok: bool, output: Any = None,
                error_type: str = "", message: str = "") -> dict[str, Any]:
    """A tool step's result when the guards answer it (the call does not run), marked as such."""
    error = None if ok else ToolFailure(type=error_type, message=message)
    result = ToolResult(tool=name, ok=ok, output=output, error=error)
    return {**result.model_dump(mode="json"), ANSWERED: guard}
