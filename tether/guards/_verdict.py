"""`ToolVerdict`: the gateway's decision on one proposed tool call, carried in that call's effect.

`Guards.tool` decides (policy, approvals) before the call's `tool:<name>` step; the interceptor
acts on the decision in that step's `before`. The verdict travels in the step's own `Effect.meta`
(under `VERDICT`), and the interceptor takes it out before the step is journaled (the policy
decision it carries is journaled instead). Since it belongs to that one effect, it cannot clear
any other call — a later direct `ctx.tool`, a concurrent `ctx.gather` branch proposing the same
call — live or replayed.

A verdict is honoured only if the gateway *issued* it for the run (`attach` records it in the
run's guard state, `take` consumes it): agent code that builds its own `ToolVerdict` with an
`allow` and passes it as `ctx.tool(..., meta=...)` ran a honeypot and a denied tool, since the
interceptor took any `ToolVerdict` object in the meta for the gateway's. A verdict not issued is
ignored: the call is judged like any direct call.
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

    def attach(self, meta: dict[str, Any] | None, issued: dict[int, Any]) -> dict[str, Any]:
        """`meta` for the call's step, carrying this verdict, which is recorded as issued in
        `issued` (the run's `RunGuardState.verdicts`) until the interceptor takes it."""
        issued[id(self)] = self
        return {**(meta or {}), VERDICT: self}

    @staticmethod
    def take(effect: Effect, issued: dict[int, Any]) -> ToolVerdict | None:
        """The verdict the gateway issued for this tool step (removed from its meta and from
        `issued`: it clears one step), or None when agent code made the call without the
        gateway — or passed a verdict the gateway did not issue."""
        verdict = effect.meta.pop(VERDICT, None)
        if not isinstance(verdict, ToolVerdict):
            return None
        known: object = issued.pop(id(verdict), None)
        if known is not verdict:
            if known is not None:  # another object's id: not this verdict's to consume
                issued[id(verdict)] = known
            return None
        return verdict if effect.name == TOOL_STEP + verdict.tool else None

    @staticmethod
    def withdraw(issued: dict[int, Any], meta: dict[str, Any]) -> None:
        """Forget the verdict `meta` carries if its step never reached the interceptor (an
        exception before `before`): an issued verdict must not outlive its call."""
        verdict = meta.get(VERDICT)
        if verdict is not None:
            issued.pop(id(verdict), None)


def tool_answer(name: str, guard: str, *, ok: bool, output: Any = None,
                error_type: str = "", message: str = "") -> dict[str, Any]:
    """A tool step's result when the guards answer it (the call does not run), marked as such."""
    error = None if ok else ToolFailure(type=error_type, message=message)
    result = ToolResult(tool=name, ok=ok, output=output, error=error)
    return {**result.model_dump(mode="json"), ANSWERED: guard}
