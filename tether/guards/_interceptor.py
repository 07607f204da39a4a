"""`GuardInterceptor`: the guards on *every* effect, not only on what goes through the gateway.

Before an effect: budgets (run tree and tenant day) are checked, and a `tool:*` step is either
answered with the gateway's verdict or, if agent code called the tool directly, checked against
the policy. After it: the effect is charged (run budgets also on replay; tenant days only live),
the tool's circuit breaker is told how a live gateway call went, and tool calls and errors feed
the loop detector. Public through `tether.guards` (and `tether.guards.gateway`).

It is given the parts of `Guards` it works with (the runs' states, the tenant days, the policy
gate, the circuit breakers), not `Guards` itself; the gateway's verdict on a call arrives in the
call's own `Effect.meta` (`ToolVerdict`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tether.guards._policygate import PolicyGate
from tether.guards._state import RunStates
from tether.guards._steps import ANSWERED, GUARD_STEP, RETRYABLE, TOOL_STEP, effect_kind
from tether.guards._tenant import TenantDays
from tether.guards._verdict import ToolVerdict, tool_answer
from tether.guards.errors import ActionDenied, BudgetExceeded, LoopHalt, ToolUnavailable
from tether.guards.loops import Intervention
from tether.guards.retry import BreakerBoard
from tether.runtime.errors import RunHalted, ShortCircuit
from tether.runtime.interceptors import BaseInterceptor, Effect

if TYPE_CHECKING:
    from tether.runtime import Context


class GuardInterceptor(BaseInterceptor):
    def __init__(self, states: RunStates, tenants: TenantDays, gate: PolicyGate,
                 breakers: BreakerBoard) -> None:
        self.states = states
        self.tenants = tenants
        self.gate = gate
        self.breakers = breakers

    async def before(self, ctx: Context, effect: Effect) -> None:
        st = self.states.of(ctx)
        kind = effect_kind(effect)
        if kind == "guard":
            return
        now = time.time()
        try:
            st.ledger.check(kind, now=now)
            tenant = self.tenants.ledger(ctx, now=now)
            if tenant is not None:
                tenant.check(kind)
        except BudgetExceeded as exc:
            raise RunHalted(exc.reason, {"guard": "budget", **exc.details}) from None
        if effect.kind == "step" and effect.name.startswith(TOOL_STEP):
            name = effect.name[len(TOOL_STEP):]
            args = effect.args[0] if effect.args else {}
            verdict = ToolVerdict.take(effect)
            if verdict is not None:  # the gateway decided (and waited for approvals)
                effect.meta["policy"] = verdict.policy
                if verdict.answer is not None:
                    raise ShortCircuit(verdict.answer, {"guard": verdict.guard,
                                                        "rule": verdict.policy.get("rule")})
                try:
                    self.breakers.get(name).before_call(now)
                except ToolUnavailable as exc:
                    answer = tool_answer(name, "breaker", ok=False, error_type="tool_unavailable",
                                         message=str(exc))
                    raise ShortCircuit(answer, {"guard": "breaker",
                                                "failures": exc.failures}) from None
                return
            decision = self.gate.decide(st.policy, name, args)
            effect.meta["policy"] = decision.to_json()
            if decision.action != "allow":
                # agent code bypassed the gateway: refuse, and leave the refusal in the journal
                ctx.log(f"policy refused direct tool call '{name}': {decision.reason}",
                        policy=decision.to_json())
                raise ActionDenied(name, decision.rule, decision.reason if decision.action ==
                                   "deny" else f"{decision.action} required; use Guards.tool")

    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        st = self.states.of(ctx)
        kind = effect_kind(effect)
        if kind == "guard" or (effect.kind == "spawn" and error is not None):
            return  # a spawn refused at the depth limit created no child
        tool_step = kind == "tool" and effect.kind == "step"
        tokens_in = tokens_out = 0
        cost = 0.0
        if kind == "model" and isinstance(result, dict):
            usage = result.get("usage") or {}
            tokens_in = int(usage.get("input_tokens", 0))
            tokens_out = int(usage.get("output_tokens", 0))
            cost = float(result.get("cost_usd") or 0.0)
        st.ledger.charge_effect(kind)
        if kind == "model":
            st.ledger.charge_usage(tokens_in, tokens_out, cost)
        if not replay:
            self.tenants.charge_live(ctx, kind, tokens_in, tokens_out, cost)
        if effect.name.startswith(GUARD_STEP):
            return  # an approval request
        if tool_step and isinstance(result, dict) and ANSWERED in result:
            return  # answered by the guards: the call did not happen (not a loop, no breaker)
        if tool_step and not replay:
            self._breaker_outcome(effect, result, error)
        if st.retrying:
            return
        try:
            iv: Intervention | None = None
            if kind == "tool":
                args = effect.args[0] if effect.args else {}
                iv = st.detector.observe_tool_call(effect.name[len(TOOL_STEP):], args)
                if isinstance(result, dict) and result.get("ok") is False:
                    err = (result.get("error") or {}).get("message", "")
                    iv = st.detector.observe_error(f"{effect.name}: {err}") or iv
            if error is not None:
                iv = st.detector.observe_error(f"{effect.name}: {error}") or iv
        except LoopHalt as exc:
            if replay:  # a halt ends the run; it cannot be in the middle of a replay
                return
            raise RunHalted(exc.reason, {"guard": "loop", **exc.details}) from None
        if iv is not None:
            st.pending = iv

    def _breaker_outcome(self, effect: Effect, result: Any, error: BaseException | None) -> None:
        """A gateway call that ran live tells its tool's breaker how it went."""
        policy = effect.meta.get("policy")
        if not isinstance(policy, dict) or policy.get("via") != "gateway":
            return
        breaker = self.breakers.get(effect.name[len(TOOL_STEP):])
        if error is None and isinstance(result, dict) and result.get("ok") is True:
            breaker.record_success()
        elif error is not None or (isinstance(result, dict) and (
                result.get("error") or {}).get("type") in RETRYABLE):
            breaker.record_failure(time.time())
