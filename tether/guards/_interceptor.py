"""`GuardInterceptor`: the guards on *every* effect, not only on what goes through the gateway.

Before an effect: its budget is *reserved* — in every budget scope of the run's tree and in the day
of every tenant of the tree — so effects running at the same time (a `ctx.gather`, the children of a
run, in this process or another) cannot all pass one check; a `ctx.spawn` gets a child budget
narrowed to what is left; and a `tool:*` step is either answered with the gateway's verdict or, if
agent code called the tool directly, checked against the policy (a refusal releases the
reservation). After it: what the effect measured (tokens, cost) is charged (run budgets also on
replay, from the journal; the store's counters and tenant days only live), the tool's circuit
breaker is told how a live gateway call went, and tool calls — those the guards answered included —
and errors feed the loop detector. Public through `tether.guards` (and `tether.guards.gateway`).

It is given the parts of `Guards` it works with (the runs' states, the tenant days, the policy
gate, the circuit breakers), not `Guards` itself; the gateway's verdict on a call arrives in the
call's own `Effect.meta` (`ToolVerdict`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tether.guards import _spend
from tether.guards._policygate import PolicyGate
from tether.guards._state import RunGuardState, RunStates
from tether.guards._steps import ANSWERED, GUARD_STEP, RETRYABLE, TOOL_STEP, effect_kind
from tether.guards._tenant import TenantDays
from tether.guards._verdict import ToolVerdict, tool_answer
from tether.guards.budget import BudgetLimits, Ledger, Spend, child_budget, effect_usage
from tether.guards.errors import ActionDenied, BudgetExceeded, LoopHalt, ToolUnavailable
from tether.guards.loops import Intervention, call_fingerprint
from tether.guards.retry import BreakerBoard
from tether.runtime.errors import RunHalted, ShortCircuit
from tether.runtime.interceptors import BaseInterceptor, Effect
from tether.tools.network import set_egress_check

if TYPE_CHECKING:
    from tether.runtime import Context
    from tether.store import Tx


class RunWrites(Protocol):
    """The run's own write path (`Context.write`), which a reservation takes: it is fenced by the
    run's lease and ordered with its journal — a measured charge commits in the same
    transaction as the step's completion."""

    read_only: bool

    def write(self, op: Callable[[Tx], Any]) -> Any: ...

    async def write_durable(self, op: Callable[[Tx], Any]) -> Any: ...


@dataclass
class Hold:
    """What a live effect reserved in `before`, settled in `after` (or released)."""

    kind: str
    tenants: list[Ledger]  # today's ledgers of the run's tree's tenants that have limits
    # where the run's budgets were reserved: in this process ("local"), in the store's
    # counters ("store"), or nowhere (no limits, or counted by an earlier execution)
    where: Literal["local", "store", ""]


def _keep_child_governed(ctx: Context, effect: Effect) -> None:
    """A child runs under its parent's guards and within its parent's depth limit.

    The runtime gives a child its parent's options overridden by the spawn's: a spawn asking
    `options={"guards": "app:LAX"}` (or `None`, which falls back to whatever the worker runs
    by default) ran its child under other guards, where a honeypot really executed; and
    `options={"max_depth": 50}` let a tree grow far past the deployment's `max_depth`. So the
    guards reference cannot change (a `ValueError` from `ctx.spawn` naming it), and a
    `max_depth` asked higher than the parent's is narrowed to it (journaled with the spawn's
    meta, like the budget)."""
    options = dict(effect.meta.get("options") or {})
    if "guards" in options and options["guards"] != ctx.options.get("guards"):
        raise ValueError(
            f"ctx.spawn(options={{'guards': {options['guards']!r}}}): a child runs under its "
            f"parent's guards ({ctx.options.get('guards')!r}); it cannot declare others")
    if "max_depth" in options:
        asked = options["max_depth"]
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 0:
            raise ValueError(f"ctx.spawn(options={{'max_depth': {asked!r}}}): max_depth must be "
                             "a non-negative integer")
        limit = int(getattr(ctx, "max_depth", asked))
        if asked > limit:
            options["max_depth"] = limit
            effect.meta["options"] = options
            effect.meta["max_depth"] = {"requested": asked, "granted": limit}


def _start_call(st: RunGuardState, effect: Effect, name: str, args: Any) -> None:
    """A tool call about to run, unless identical calls already running would take it past
    what the loop detector lets run one after another.

    The detector counts a call when it has run: one after another, the same call runs
    `repeat_calls` times (intervention) and once more (halt). One reply with eight identical
    `wire` calls ran all eight in parallel before the detector saw the first. A call made while
    identical ones are still running is answered `loop_refused` (guard `loop`) once the
    observed and running copies reach that bound; calls made one at a time never are."""
    fingerprint = call_fingerprint(name, args)
    running = sum(1 for f in st.in_flight.values() if f == fingerprint)
    observed = st.detector.repeats(fingerprint)
    if running and observed + running >= st.detector.config.repeat_calls + 1:
        answer = tool_answer(
            name, "loop", ok=False, error_type="loop_refused",
            message=f"not run: the same call to '{name}' is already running {running} time(s) "
                    f"and was made {observed} time(s) before; repeating it will not give a "
                    "different result")
        raise ShortCircuit(answer, {"guard": "loop", "running": running, "observed": observed})
    st.in_flight[effect.key] = fingerprint


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
        now = ctx.store.now()  # the clock run.created_at was written in (wall-time budgets)
        totals = await self._reserve(ctx, st, effect, kind, now)
        try:
            if effect.kind == "spawn":
                _keep_child_governed(ctx, effect)
                self._narrow_child_budget(ctx, st, effect, totals, now)
            elif effect.kind == "step" and effect.name.startswith(TOOL_STEP):
                # the tool runs next, in this task: its HTTP client checks every request it
                # sends (redirect hops included) against this run's egress rules
                set_egress_check(st.policy.egress_check if st.policy is not None else None)
                self._tool_step(ctx, st, effect, now)
        except ShortCircuit:
            raise  # the step is answered and journaled: it keeps its reservation
        except BaseException:
            self._release(ctx, st, effect)
            raise

    async def _reserve(self, ctx: Context, st: RunGuardState, effect: Effect, kind: str,
                       now: float) -> dict[str, Spend]:
        """Take the effect's share of every budget before it starts, or halt the run."""
        budget = st.budget
        tenants: list[Ledger] = []
        try:
            budget.check_time(now)
            tenants = self.tenants.reserve(ctx, st.tenants, kind, now)
        except BudgetExceeded as exc:
            raise RunHalted(exc.reason, {"guard": "budget", **exc.details}) from None
        where: Literal["local", "store", ""] = ""
        exceeded: BudgetExceeded | None = None
        rebase = False
        writes: RunWrites = ctx
        try:
            if budget.mode == "local" and effect.kind == "spawn" and not ctx.read_only:
                # from now on other runs spend from this budget too: the store's counters take
                # over, starting from this run's exact totals
                budget.seeds = {s.run_id: budget.totals[s.run_id].counters()
                                for s in budget.scopes}
                budget.mode = "store"
                rebase = True
            if budget.mode == "local" and effect.key not in budget.held:
                # alone in its tree: this process's totals are exact, no round trip needed
                exceeded = budget.first_exceeded(budget.totals, kind)
                if exceeded is None:
                    budget.add(effect_usage(kind))
                    where = "local"
            elif budget.mode == "store" and not ctx.read_only:
                exceeded, budget.totals, fresh = await writes.write_durable(
                    _spend.reserve(budget, ctx.run_id, effect.key, kind, rebase=rebase))
                budget.seeds.clear()
                where = "store" if fresh else ""
            # else: no limits, or an effect run again after a crash (counted when first run)
        except BaseException:
            self.tenants.release(tenants, kind)
            raise
        if exceeded is not None:
            self.tenants.release(tenants, kind)
            raise RunHalted(exceeded.reason, {"guard": "budget", **exceeded.details})
        budget.spent.add(effect_usage(kind))
        budget.holds[effect.key] = Hold(kind, tenants, where)
        return budget.totals

    def _release(self, ctx: Context, st: RunGuardState, effect: Effect) -> None:
        """Give back the reservation of an effect refused after it was made (it never ran)."""
        budget = st.budget
        hold = budget.holds.pop(effect.key, None)
        if not isinstance(hold, Hold):
            return
        budget.spent.add(effect_usage(hold.kind), sign=-1)
        self.tenants.release(hold.tenants, hold.kind)
        if hold.where == "local":
            budget.add(effect_usage(hold.kind), sign=-1)
        elif hold.where == "store":
            writes: RunWrites = ctx
            writes.write(_spend.release(budget, ctx.run_id, effect.key, hold.kind))

    def _narrow_child_budget(self, ctx: Context, st: RunGuardState, effect: Effect,
                             totals: dict[str, Spend], now: float) -> None:
        """A child's budget can only be narrower than what its parent has left: the spawn's
        options get the narrowed budget (the runtime creates the child with them) and the
        spawn's journal entry records what was asked and what was granted."""
        options = dict(effect.meta.get("options") or {})
        asked = options.get("budget")
        requested = child_budget(asked)  # a clear ValueError for a malformed budget
        if requested is None and "budget" in ctx.options:
            requested = child_budget(ctx.options["budget"])  # inherited
        room = st.budget.room(totals, now)
        if requested is None and not room:
            return  # no limits anywhere
        granted = (requested or BudgetLimits()).narrowed(room)
        options["budget"] = granted.to_json()
        effect.meta["options"] = options
        effect.meta["budget"] = {"requested": asked, "granted": granted.to_json()}

    def _tool_step(self, ctx: Context, st: RunGuardState, effect: Effect, now: float) -> None:
        """A tool step: the gateway's verdict, or the policy for a direct call."""
        name = effect.name[len(TOOL_STEP):]
        args = effect.args[0] if effect.args else {}
        verdict = ToolVerdict.take(effect, st.verdicts)
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
            _start_call(st, effect, name, args)
            return
        # judged on the tool the step runs (its version, its metadata), not on the newest
        # version of the guards' registry
        decision = self.gate.decide_direct(st.policy, name, args, effect.meta)
        effect.meta["policy"] = decision.to_json()
        if decision.action != "allow":
            # agent code bypassed the gateway: refuse, and leave the refusal in the journal
            ctx.log(f"policy refused direct tool call '{name}': {decision.reason}",
                    policy=decision.to_json())
            raise ActionDenied(name, decision.rule, decision.reason if decision.action ==
                               "deny" else f"{decision.action} required; use Guards.tool")
        _start_call(st, effect, name, args)

    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        st = self.states.of(ctx)
        kind = effect_kind(effect)
        if kind == "guard" or (effect.kind == "spawn" and error is not None):
            return  # a spawn refused at the depth limit created no child
        tool_step = kind == "tool" and effect.kind == "step"
        # the call's fingerprint, taken when it started (`_start_call`) on the same arguments:
        # the loop detector observes it without canonicalising and hashing them again
        fingerprint = st.in_flight.pop(effect.key, None) if tool_step and not replay else None
        tokens_in = tokens_out = 0
        cost = 0.0
        if kind == "model" and isinstance(result, dict):
            usage = result.get("usage") or {}
            tokens_in = int(usage.get("input_tokens", 0))
            tokens_out = int(usage.get("output_tokens", 0))
            cost = float(result.get("cost_usd") or 0.0)
        self._charge(ctx, st, effect, kind, (tokens_in, tokens_out, cost), replay)
        if effect.name.startswith(GUARD_STEP):
            return  # an approval request
        if tool_step and isinstance(result, dict) and ANSWERED in result:
            # answered by the guards: the call did not happen (no breaker, no error), but a
            # proposal made again and again — refused each time — is a loop all the same
            if not st.retrying and result.get(ANSWERED) != "loop":  # counted when refused
                args = effect.args[0] if effect.args else {}
                self._observe(st, replay, lambda: st.detector.observe_tool_call(
                    effect.name[len(TOOL_STEP):], args, fingerprint=fingerprint))
            return
        if tool_step and not replay:
            self._breaker_outcome(effect, result, error)
        if st.retrying:
            return

        def observe() -> Intervention | None:
            iv: Intervention | None = None
            if kind == "tool":
                args = effect.args[0] if effect.args else {}
                iv = st.detector.observe_tool_call(effect.name[len(TOOL_STEP):], args,
                                                   fingerprint=fingerprint)
                if isinstance(result, dict) and result.get("ok") is False:
                    err = (result.get("error") or {}).get("message", "")
                    iv = st.detector.observe_error(f"{effect.name}: {err}") or iv
            if error is not None:
                iv = st.detector.observe_error(f"{effect.name}: {error}") or iv
            return iv

        self._observe(st, replay, observe)

    @staticmethod
    def _observe(st: RunGuardState, replay: bool,
                 observation: Callable[[], Intervention | None]) -> None:
        """Feed the loop detector; a persisting loop halts a live run."""
        try:
            iv = observation()
        except LoopHalt as exc:
            if replay:  # a halt ends the run; it cannot be in the middle of a replay
                return
            raise RunHalted(exc.reason, {"guard": "loop", **exc.details}) from None
        if iv is not None:
            st.pending = iv

    def _charge(self, ctx: Context, st: RunGuardState, effect: Effect, kind: str,
                measured: tuple[int, int, float], replay: bool) -> None:
        """Settle the effect's budget: its counters were reserved in `before` (live), or are
        charged now (replayed, or answered by an interceptor before ours reserved); what it
        measured is charged now — live into the store's counters too, in the same
        transaction as the step's completion."""
        budget = st.budget
        tokens_in, tokens_out, cost = measured
        usage = {k: v for k, v in (("tokens_in", tokens_in), ("tokens_out", tokens_out),
                                   ("cost_usd", cost)) if v}
        hold = None if replay else budget.holds.pop(effect.key, None)
        if not isinstance(hold, Hold):
            hold = None
            budget.spent.add(effect_usage(kind))
        if usage:
            budget.spent.add(usage)
        if replay:
            return  # in the journal already: the totals (and the counters) include it
        self.tenants.charge_live(ctx, st.tenants, kind, tokens_in, tokens_out, cost,
                                 reserved=hold is not None)
        if ctx.read_only:
            return
        unreserved = None if hold is not None else (effect.key, kind)
        if budget.mode == "local":
            budget.add({**(effect_usage(kind) if unreserved else {}), **usage})
        elif budget.mode == "store" and (usage or unreserved):
            writes: RunWrites = ctx
            writes.write(_spend.charge(budget, ctx.run_id, usage, unreserved))

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
