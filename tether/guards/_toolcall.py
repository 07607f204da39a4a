"""`Guards.tool`: a model-proposed tool call, decided, approved, answered or run with retries.

Every proposal becomes one `tool:<name>` step per attempt. The gateway hands its `Verdict` to
the interceptor through a context variable set only around that one step; when the call must not
run (denial, denied approval, honeypot, open circuit breaker), the interceptor answers the step
with `ShortCircuit` and the tool is never called.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.guards._approval_wait import await_approval
from tether.guards._steps import ANSWERED, RETRYABLE, TOOL_STEP
from tether.runtime.interceptors import Effect

if TYPE_CHECKING:
    from tether.guards.gateway import Guards
    from tether.runtime import Context
    from tether.tools import ToolRegistry, ToolResult


@dataclass
class Verdict:
    """The gateway's decision on one proposed call, handed to the interceptor for its tool step:
    the policy decision (journaled in the step's `step_started` meta) and, when the call must not
    run, the answer the step returns instead (`guard` says who answered)."""

    tool: str
    policy: dict[str, Any]
    answer: dict[str, Any] | None = None
    guard: str = ""
    taken: bool = False


# The verdict for the tool step the gateway is making right now in this task. A context variable,
# not run state: it is set only around that one step, so it cannot clear any other call (a later
# direct `ctx.tool`, a concurrent `ctx.gather` branch proposing the same call), live or replayed.
_GATEWAY: contextvars.ContextVar[Verdict | None] = contextvars.ContextVar(
    "tether_guards_gateway", default=None)


def take_verdict(effect: Effect) -> Verdict | None:
    """The gateway's verdict for this tool step, once; None if the step is not the gateway's."""
    verdict = _GATEWAY.get()
    if verdict is None or verdict.taken or effect.name != TOOL_STEP + verdict.tool:
        return None
    verdict.taken = True
    return verdict


async def call_tool(guards: Guards, ctx: Context, registry: ToolRegistry, name: str,
                    arguments: Any) -> ToolResult:
    """The body of `Guards.tool` (see there), once the registry is known."""
    from tether.tools import ToolFailure, ToolResult

    st = guards.state(ctx)
    args = st.vault.unmask(arguments)  # the tool gets the real values, never the model
    decision = guards.decide(st, name, args)
    policy = decision.to_json()
    if decision.action == "deny":
        refusal = ToolFailure(type="policy_denied", message=f"denied by policy rule "
                              f"'{decision.rule}': {decision.reason}")
        return await answer_step(ctx, registry, args, Verdict(
            name, policy, ToolResult(tool=name, ok=False, error=refusal).model_dump(
                mode="json"), "policy"))
    if decision.action == "honeypot":
        simulated = ToolResult(tool=name, ok=True, output={"status": "ok"})
        result = await answer_step(ctx, registry, args, Verdict(
            name, policy, simulated.model_dump(mode="json"), "honeypot"))
        flag = {"flag": "honeypot", "tool": name, "rule": decision.rule}
        reason = f"honeypot tool '{name}' was called"
        st.flags.append({"reason": reason, **flag})
        ctx.flag(reason, **flag)  # `tether runs --flagged` lists the run
        return result
    if decision.action == "approve":
        denied = await await_approval(ctx, guards.config, st, name, args, decision)
        if denied is not None:
            refusal = ToolFailure(type="approval_denied", message=denied)
            return await answer_step(ctx, registry, args, Verdict(
                name, policy, ToolResult(tool=name, ok=False, error=refusal).model_dump(
                    mode="json"), "approval"))
    retry = guards.config.retry
    attempt = 0
    while True:
        attempt += 1
        # the interceptor journals this decision with the step, and consults the tool's
        # circuit breaker: while it is open, the step is answered `tool_unavailable`
        token = _GATEWAY.set(Verdict(name, {**policy, "via": "gateway", "attempt": attempt}))
        st.retrying = attempt > 1
        try:
            result = await ctx.tool(registry, name, args)
        finally:
            st.retrying = False
            _GATEWAY.reset(token)
        failed = not result.ok and result.error is not None and \
            result.error.type in RETRYABLE
        if not failed or retry is None or not retry.should_retry(attempt):
            return result
        # each attempt and each back-off timer is journaled: after a crash the count goes on
        await ctx.sleep(retry.delay(attempt, seed=f"{ctx.run_id}:{name}:{attempt}"))


async def answer_step(ctx: Context, registry: ToolRegistry, args: Any,
                      verdict: Verdict) -> ToolResult:
    """The proposal's tool step, answered by the guards instead of the tool."""
    from tether.tools import ToolResult
    from tether.tools.effect import effect_meta

    assert verdict.answer is not None
    answer = verdict.answer = {**verdict.answer, ANSWERED: verdict.guard}
    try:
        meta = effect_meta(registry.get(verdict.tool))
    except Exception:
        meta = {"kind": "tool", "tool": verdict.tool}

    def answered(_arguments: Any) -> dict[str, Any]:
        # never the tool: runs only if no GuardInterceptor answered (fails closed)
        return answer

    token = _GATEWAY.set(verdict)
    try:
        data = await ctx.step(TOOL_STEP + verdict.tool, answered, args, idempotent=True,
                              meta=meta)
    finally:
        _GATEWAY.reset(token)
    return ToolResult.model_validate(data)


def unavailable_answer(name: str, message: str) -> dict[str, Any]:
    """The answer of a tool step whose circuit breaker is open (the call did not run)."""
    from tether.tools import ToolFailure, ToolResult

    result = ToolResult(tool=name, ok=False, error=ToolFailure(type="tool_unavailable",
                                                               message=message))
    return {**result.model_dump(mode="json"), ANSWERED: "breaker"}
