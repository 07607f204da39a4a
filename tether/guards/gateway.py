"""Guards wired into the runtime: an interceptor on every effect plus the gateway for model-proposed
tool calls.

Two layers, on purpose:
- `GuardInterceptor` sees *every* effect (`ctx.step`, `ctx.spawn`): budgets are checked before
  each one and charged after (run budgets also on replay, so totals are rebuilt from the journal;
  tenant-day usage only live, into the store's usage counters); every `tool:*` step is checked
  against the policy, so even agent code that calls `ctx.tool` directly cannot execute a denied,
  unapproved or honeypot tool; tool calls and errors feed the loop detector.
- `Guards.tool` / `Guards.model` are what an agent loop calls with what the model proposed: they
  unmask PII placeholders for the tool, decide, wait durably for approvals, and mask PII and
  apply loop interventions before a model call. A refusal (denial, denied approval, open circuit
  breaker) or a honeypot's simulated success is the *tool step's own answer*: the interceptor
  raises `ShortCircuit` with it, so the journal holds one `tool:<name>` step per proposed call
  whatever was decided, with the decision in its `step_started` event.

Per-run guard state lives in `ctx.scratch`, which the runtime rebuilds on every replay.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.guards.approvals import (
    ApprovalRequest,
    ApprovalState,
    Decision,
    KeyRegistry,
)
from tether.guards.budget import Ledger, Limits, Spend, effect_usage, utc_day
from tether.guards.embedding import Embedder
from tether.guards.errors import (
    ActionDenied,
    ApprovalError,
    BudgetExceeded,
    LoopHalt,
    ToolUnavailable,
    VaultError,
)
from tether.guards.loops import Intervention, LoopConfig, LoopDetector
from tether.guards.pii import PiiMasker, PiiPattern, Vault, decode_key
from tether.guards.policy import Decision as PolicyDecision
from tether.guards.policy import Policy, PolicySet, ToolInfo, load_policy
from tether.guards.retry import BreakerBoard, RetryPolicy
from tether.runtime.errors import RunHalted, ShortCircuit
from tether.runtime.interceptors import BaseInterceptor, Effect

if TYPE_CHECKING:
    from tether.models import Model, ModelResponse
    from tether.runtime import Context
    from tether.store import Event, RunRecord
    from tether.tools import Tool, ToolRegistry, ToolResult

SCRATCH_KEY = "tether.guards"
_RETRYABLE = frozenset({"execution_error", "timeout", "http_error"})
APPROVAL_SIGNAL = "approval:"
GUARD_STEP = "guard:"
TOOL_STEP = "tool:"  # tether.tools.effect.STEP_PREFIX (not imported: tools load lazily)
# Key marking a tool step's result as the guards' answer (the call did not run). Kept in the
# journaled result, so live and replay classify the step alike; `ToolResult` ignores it.
ANSWERED = "guard"


@dataclass
class GuardConfig:
    """Everything the guards of one deployment need. Per-agent/tenant policies: `policies`."""

    policy: Policy | PolicySet | None = None  # None = deny every tool (deny by default)
    tenant_policies: dict[str, Policy] = field(default_factory=dict)
    run_limits: Limits = field(default_factory=Limits)  # default; run.options["budget"] wins
    tenant_limits: dict[str, Limits] = field(default_factory=dict)  # per tenant, per UTC day
    loops: LoopConfig = field(default_factory=LoopConfig)
    embedder: Embedder | None = None  # None disables the semantic-loop signal
    pii: bool = True
    pii_patterns: Sequence[PiiPattern] = ()
    vault_key: bytes | None = None  # default: TETHER_VAULT_KEY
    approvers: KeyRegistry = field(default_factory=KeyRegistry)
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    retry: RetryPolicy | None = None  # retries of failed tool calls made through Guards.tool
    record_usage: bool = True  # add every tenant's live spend to the store's usage counters
    usage_refresh_s: float = 1.0  # re-read a limited tenant's counters (other workers) this often

    def __post_init__(self) -> None:
        if self.tenant_limits and not self.record_usage:
            raise ValueError("tenant_limits need record_usage=True (they are kept in the store's "
                             "usage counters)")

    @classmethod
    def from_policy_file(cls, path: str | Path, **kwargs: Any) -> GuardConfig:
        return cls(policy=load_policy(path), **kwargs)


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


def _take(effect: Effect) -> Verdict | None:
    verdict = _GATEWAY.get()
    if verdict is None or verdict.taken or effect.name != TOOL_STEP + verdict.tool:
        return None
    verdict.taken = True
    return verdict


@dataclass
class RunGuardState:
    ledger: Ledger
    detector: LoopDetector
    vault: Vault
    masker: PiiMasker
    policy: Policy | PolicySet | None
    pending: Intervention | None = None
    approvals: int = 0
    flags: list[dict[str, Any]] = field(default_factory=list)
    temperature_bump: float = 0.0
    sealed_entries: int = 0
    retrying: bool = False  # a retry is not a loop: the detector skips it


@dataclass
class _TenantDay:
    ledger: Ledger
    day: str
    synced_at: float = 0.0


class Guards:
    def __init__(self, config: GuardConfig | None = None,
                 tools: ToolRegistry | None = None) -> None:
        self.config = config or GuardConfig()
        self.tools = tools
        self.breakers = BreakerBoard(self.config.breaker_threshold,
                                     self.config.breaker_cooldown_s)
        # (store, tenant) -> today's ledger, shared by every run of this process: a charge is
        # seen by the tenant's other runs at their next check, not when they next start
        self._tenant_days: dict[tuple[str, str], _TenantDay] = {}

    # ------------------------------------------------------------------ runtime hook
    def interceptors(self) -> list[GuardInterceptor]:
        """Pass to `Tether(interceptors=...)` / `Worker(interceptors=...)`."""
        return [GuardInterceptor(self)]

    def state(self, ctx: Context) -> RunGuardState:
        st = ctx.scratch.get(SCRATCH_KEY)
        if st is None:
            st = self._new_state(ctx)
            ctx.scratch[SCRATCH_KEY] = st
        assert isinstance(st, RunGuardState)
        return st

    def _new_state(self, ctx: Context) -> RunGuardState:
        cfg = self.config
        run = ctx.run
        limits = Limits.from_json(run.options["budget"]) if "budget" in run.options \
            else cfg.run_limits
        # A run starting picks up what the tenant's runs on other workers spent today.
        self.tenant_ledger(ctx, refresh=True)
        # The run's limits cover its whole tree: the other runs of the tree have already spent
        # part of it (children draw from the parent's budget, and the parent from theirs).
        tree = Ledger(limits, scope="run", spend=tree_spend(ctx.store, run, exclude=run.id),
                      started_at=_tree_start(ctx.store, run))
        # This run's own effects, replayed ones included (spawns too), are charged in `after`.
        own = Ledger(Limits(), scope="run", parent=tree)
        policy = cfg.policy
        if run.tenant in cfg.tenant_policies:
            tenant_policy = cfg.tenant_policies[run.tenant]
            base = list(policy.policies) if isinstance(policy, PolicySet) else (
                [policy] if policy else [])
            policy = PolicySet(tenant_policy, *base)
        return RunGuardState(
            ledger=own,
            detector=LoopDetector(cfg.embedder, cfg.loops),
            vault=Vault(),
            masker=PiiMasker(list(cfg.pii_patterns)),
            policy=policy,
        )

    def tenant_ledger(self, ctx: Context, *, now: float | None = None,
                      refresh: bool = False) -> Ledger | None:
        """Today's ledger of the run's tenant (None without tenant limits).

        Its spend is the larger of two lower bounds of the truth: what this process charged
        (every live effect of the tenant's runs here, at once) and the store's usage counters
        (every worker's committed usage), re-read when a run starts and every
        `usage_refresh_s`. Replayed effects are never charged to it: the counters hold them."""
        limits = self.config.tenant_limits.get(ctx.tenant)
        if limits is None:
            return None
        now = time.time() if now is None else now
        day = utc_day(datetime.fromtimestamp(now, UTC))
        key = (_store_key(ctx.store), ctx.tenant)
        td = self._tenant_days.get(key)
        if td is None or td.day != day:
            td = _TenantDay(Ledger(limits, scope=f"tenant {ctx.tenant} (today)"), day)
            self._tenant_days[key] = td
            refresh = True
        if refresh or now - td.synced_at >= self.config.usage_refresh_s:
            td.ledger.catch_up(ctx.store.get_usage(ctx.tenant, day))
            td.synced_at = now
        return td.ledger

    def _charge_live(self, ctx: Context, kind: str, tokens_in: int, tokens_out: int,
                     cost_usd: float) -> None:
        """Tenant-day accounting of one live effect: this process's ledger, then the store's
        counters (read before the increment is submitted, so it is never counted twice)."""
        now = time.time()
        tenant = self.tenant_ledger(ctx, now=now)
        if tenant is not None:
            tenant.charge_effect(kind)
            if tokens_in or tokens_out or cost_usd:
                tenant.charge_usage(tokens_in, tokens_out, cost_usd)
        if self.config.record_usage:
            ctx.add_usage(effect_usage(kind, tokens_in, tokens_out, cost_usd),
                          day=utc_day(datetime.fromtimestamp(now, UTC)))

    # ----------------------------------------------------------------- policy helpers
    def tool_info(self, name: str) -> ToolInfo:
        tool: Tool | None = None
        if self.tools is not None:
            try:
                tool = self.tools.get(name)
            except Exception:
                tool = None
        if tool is None:
            return ToolInfo(name=name)
        kind = "openapi" if hasattr(tool, "base_url") else str(getattr(tool, "kind", "python"))
        return ToolInfo(
            name=name,
            side_effect=tool.side_effect,
            kind=kind,
            base_url=getattr(tool, "base_url", None),
            requires_approval=bool(getattr(tool, "requires_approval", False)),
            critical=bool(getattr(tool, "critical", False)),
        )

    def decide(self, st: RunGuardState, name: str, args: Any) -> PolicyDecision:
        if st.policy is None:
            return PolicyDecision("deny", "no-policy", "no policy configured (deny by default)",
                                  name)
        return st.policy.decide(self.tool_info(name), args)

    # --------------------------------------------------------------------- gateway
    async def tool(self, ctx: Context, name: str, arguments: Any,
                   registry: ToolRegistry | None = None) -> ToolResult:
        """Execute a model-proposed tool call if, and only if, the guards allow it.

        Never raises for a refusal: a denial, an unavailable tool or a denied approval comes back
        as a failed `ToolResult` the agent shows to the model. Every proposal is one `tool:<name>`
        step (per attempt), answered by the guards when it must not run."""
        from tether.tools import ToolFailure, ToolResult

        registry = registry or self.tools
        if registry is None:
            raise ValueError("Guards.tool needs a ToolRegistry (Guards(tools=...) or registry=)")
        st = self.state(ctx)
        args = st.vault.unmask(arguments)  # the tool gets the real values, never the model
        decision = self.decide(st, name, args)
        policy = decision.to_json()
        if decision.action == "deny":
            refusal = ToolFailure(type="policy_denied", message=f"denied by policy rule "
                                  f"'{decision.rule}': {decision.reason}")
            return await self._answer(ctx, registry, args, Verdict(
                name, policy, ToolResult(tool=name, ok=False, error=refusal).model_dump(
                    mode="json"), "policy"))
        if decision.action == "honeypot":
            simulated = ToolResult(tool=name, ok=True, output={"status": "ok"})
            result = await self._answer(ctx, registry, args, Verdict(
                name, policy, simulated.model_dump(mode="json"), "honeypot"))
            flag = {"flag": "honeypot", "tool": name, "rule": decision.rule}
            reason = f"honeypot tool '{name}' was called"
            st.flags.append({"reason": reason, **flag})
            ctx.flag(reason, **flag)  # `tether runs --flagged` lists the run
            return result
        if decision.action == "approve":
            denied = await self._await_approval(ctx, st, name, args, decision)
            if denied is not None:
                refusal = ToolFailure(type="approval_denied", message=denied)
                return await self._answer(ctx, registry, args, Verdict(
                    name, policy, ToolResult(tool=name, ok=False, error=refusal).model_dump(
                        mode="json"), "approval"))
        retry = self.config.retry
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
                result.error.type in _RETRYABLE
            if not failed or retry is None or not retry.should_retry(attempt):
                return result
            # each attempt and each back-off timer is journaled: after a crash the count goes on
            await ctx.sleep(retry.delay(attempt, seed=f"{ctx.run_id}:{name}:{attempt}"))

    async def _answer(self, ctx: Context, registry: ToolRegistry, args: Any,
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

    async def _await_approval(self, ctx: Context, st: RunGuardState, name: str, args: Any,
                              decision: PolicyDecision) -> str | None:
        """Journal the request and wait durably (no worker held). None = approved, else the
        denial message."""
        st.approvals += 1
        request = ApprovalRequest(
            id=f"{ctx.run_id}.a{st.approvals}", run_id=ctx.run_id, tool=name, args=args,
            rule=decision.rule, critical=decision.critical, reason=decision.reason)
        body = request.to_json()

        def propose() -> dict[str, Any]:
            return body

        await ctx.step(f"{GUARD_STEP}approval:{name}", propose, idempotent=True,
                       meta={"kind": "approval", "approval_id": request.id,
                             "policy": decision.to_json()})
        state = ApprovalState(request)
        nonces: set[str] = set()
        while state.status == "pending":
            payload = await ctx.wait_for(APPROVAL_SIGNAL + request.id)
            try:
                state.apply(Decision.from_json(payload or {}), self.config.approvers, nonces)
            except (ApprovalError, TypeError, AttributeError) as exc:
                ctx.log(f"approval {request.id}: decision rejected: {exc}",
                        approval_id=request.id, rejected=str(exc))
        last = state.decisions[-1]
        ctx.log(f"approval {request.id}: {state.status} by "
                f"{', '.join(d.approver for d in state.decisions)}",
                approval_id=request.id, status=state.status,
                approvers=[d.approver for d in state.decisions])
        if state.status == "approved":
            return None
        return f"denied by approver '{last.approver}': {last.reason or 'no reason given'}"

    # ----------------------------------------------------------------------- models
    async def model(self, ctx: Context, model: Model, messages: Sequence[Any],
                    **kwargs: Any) -> ModelResponse:
        """Mask PII, apply a pending loop intervention, call the model, watch for loops."""
        from tether.models.messages import Message, as_messages

        st = self.state(ctx)
        msgs = as_messages(list(messages))
        if st.pending is not None:
            iv, st.pending = st.pending, None
            msgs = _trim(msgs, iv.trim_history_to)
            msgs.append(Message.user(iv.message))
            st.temperature_bump += iv.temperature_delta
            details = {k: v for k, v in iv.to_json().items() if k != "message"}
            ctx.log(f"loop intervention ({iv.kind}): {iv.message}", **details)
        if st.temperature_bump:
            base = float(kwargs.get("temperature", 0.0) or 0.0)
            kwargs["temperature"] = round(min(2.0, base + st.temperature_bump), 3)
        if self.config.pii:
            msgs = [_mask_message(m, st) for m in msgs]
            await self._persist_vault(ctx, st)
        response = await ctx.model(model, msgs, **kwargs)
        if response.text and response.text.strip():
            embedder = st.detector.embedder
            vec = None
            if embedder is not None:
                # ~10 ms of numpy: off the event loop, so other runs on this worker keep going
                vec = (await asyncio.to_thread(embedder.embed, [response.text]))[0]
            try:
                thought = None if vec is None else st.detector.observe_thought_vector(vec)
            except LoopHalt as exc:
                raise RunHalted(exc.reason, {"guard": "loop", **exc.details}) from None
            if thought is not None:
                st.pending = thought
        return response

    async def _persist_vault(self, ctx: Context, st: RunGuardState) -> None:
        """Journal the vault, encrypted, whenever it grew (never in plaintext; without a key it
        is not stored at all and is rebuilt by re-masking on replay, which is deterministic)."""
        if len(st.vault) == st.sealed_entries:
            return
        st.sealed_entries = len(st.vault)
        try:
            key = vault_key(self.config)
        except VaultError:
            return
        blob = base64.b64encode(st.vault.seal(key, context=ctx.run_id)).decode()
        # a fact, not an effect: written once, skipped on replay (which re-masks anyway)
        ctx.annotate(f"{GUARD_STEP}vault", {"vault": blob, "entries": len(st.vault)})

    def pending_intervention(self, ctx: Context) -> Intervention | None:
        return self.state(ctx).pending

    def flags(self, ctx: Context) -> list[dict[str, Any]]:
        return list(self.state(ctx).flags)


class GuardInterceptor(BaseInterceptor):
    def __init__(self, guards: Guards) -> None:
        self.guards = guards

    async def before(self, ctx: Context, effect: Effect) -> None:
        st = self.guards.state(ctx)
        kind = _kind(effect)
        if kind == "guard":
            return
        now = time.time()
        try:
            st.ledger.check(kind, now=now)
            tenant = self.guards.tenant_ledger(ctx, now=now)
            if tenant is not None:
                tenant.check(kind)
        except BudgetExceeded as exc:
            raise RunHalted(exc.reason, {"guard": "budget", **exc.details}) from None
        if effect.kind == "step" and effect.name.startswith(TOOL_STEP):
            name = effect.name[len(TOOL_STEP):]
            args = effect.args[0] if effect.args else {}
            verdict = _take(effect)
            if verdict is not None:  # the gateway decided (and waited for approvals)
                effect.meta["policy"] = verdict.policy
                if verdict.answer is not None:
                    raise ShortCircuit(verdict.answer, {"guard": verdict.guard,
                                                        "rule": verdict.policy.get("rule")})
                try:
                    self.guards.breakers.get(name).before_call(now)
                except ToolUnavailable as exc:
                    answer = _unavailable(name, str(exc))
                    raise ShortCircuit(answer, {"guard": "breaker",
                                                "failures": exc.failures}) from None
                return
            decision = self.guards.decide(st, name, args)
            effect.meta["policy"] = decision.to_json()
            if decision.action != "allow":
                # agent code bypassed the gateway: refuse, and leave the refusal in the journal
                ctx.log(f"policy refused direct tool call '{name}': {decision.reason}",
                        policy=decision.to_json())
                raise ActionDenied(name, decision.rule, decision.reason if decision.action ==
                                   "deny" else f"{decision.action} required; use Guards.tool")

    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        st = self.guards.state(ctx)
        kind = _kind(effect)
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
            self.guards._charge_live(ctx, kind, tokens_in, tokens_out, cost)
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
        breaker = self.guards.breakers.get(effect.name[len(TOOL_STEP):])
        if error is None and isinstance(result, dict) and result.get("ok") is True:
            breaker.record_success()
        elif error is not None or (isinstance(result, dict) and (
                result.get("error") or {}).get("type") in _RETRYABLE):
            breaker.record_failure(time.time())


# ------------------------------------------------------------------------- helpers
def _kind(effect: Effect) -> str:
    if effect.kind == "spawn":
        return "child"
    name = effect.name
    if effect.kind == "step" and name.startswith(GUARD_STEP):
        return _guard_kind(name)
    if name.startswith("model:"):
        return "model"
    if name.startswith(TOOL_STEP):
        return "tool"
    return "step"


def _guard_kind(name: str) -> str:
    """An approval request costs a step. Refused proposals cost budget too, or one model
    response with a thousand denied calls would be free — as what they are: tool steps answered
    by the guards, counted like any other tool call."""
    sub = name[len(GUARD_STEP):].split(":", 1)[0]
    return "step" if sub == "approval" else "guard"


def _unavailable(name: str, message: str) -> dict[str, Any]:
    from tether.tools import ToolFailure, ToolResult

    result = ToolResult(tool=name, ok=False, error=ToolFailure(type="tool_unavailable",
                                                               message=message))
    return {**result.model_dump(mode="json"), ANSWERED: "breaker"}


def _store_key(store: Any) -> str:
    return str(getattr(store, "url", None) or id(store))


def _trim(msgs: list[Any], keep: int) -> list[Any]:
    """Keep system messages, the first user message (the goal) and the last `keep` messages,
    without splitting an assistant tool-call turn from its tool results."""
    head = [m for m in msgs if m.role == "system"]
    rest = [m for m in msgs if m.role != "system"]
    if len(rest) <= keep + 1:
        return msgs
    goal, tail = rest[0], rest[-keep:] if keep else []
    while tail and tail[0].role == "tool":
        tail = tail[1:]
    return [*head, goal, *tail]


def _mask_message(m: Any, st: RunGuardState) -> Any:
    update: dict[str, Any] = {}
    if m.content:
        update["content"] = st.masker.mask(m.content, st.vault)[0]
    if m.tool_calls:
        update["tool_calls"] = [
            tc.model_copy(update={"arguments": st.masker.mask_value(tc.arguments, st.vault)})
            for tc in m.tool_calls]
    return m.model_copy(update=update) if update else m


def spend_from_events(events: Sequence[Event], since: float | None = None) -> Spend:
    """What one run spent, recomputed from its journal (the single source of truth)."""
    sp = Spend()
    started: set[str] = set()
    for e in events:
        if since is not None and e.ts < since:
            continue
        name = e.name or ""
        if e.kind == "step_started" and not name.startswith(GUARD_STEP):
            if e.key not in started:  # a retried in-doubt step is one step
                started.add(e.key or "")
                sp.steps += 1
                if name.startswith(TOOL_STEP):  # answered by the guards or not
                    sp.tool_calls += 1
        elif e.kind == "step_completed" and name.startswith(GUARD_STEP):
            if _guard_kind(name) == "step":
                sp.steps += 1
        elif e.kind == "step_completed" and name.startswith("model:") and isinstance(
                e.data, dict):
            usage = e.data.get("usage") or {}
            sp.tokens_in += int(usage.get("input_tokens", 0))
            sp.tokens_out += int(usage.get("output_tokens", 0))
            sp.cost_usd = round(sp.cost_usd + float(e.data.get("cost_usd") or 0.0), 10)
        elif e.kind == "child_spawned":
            sp.child_runs += 1
            sp.steps += 1
    return sp


def _add(a: Spend, b: Spend) -> Spend:
    return Spend(a.steps + b.steps, a.tokens_in + b.tokens_in, a.tokens_out + b.tokens_out,
                 round(a.cost_usd + b.cost_usd, 10), max(a.wall_time_s, b.wall_time_s),
                 a.tool_calls + b.tool_calls, a.child_runs + b.child_runs)


def tree_spend(store: Any, run: RunRecord, exclude: str) -> Spend:
    """Spend of every other run in this run's tree (root and all descendants)."""
    root = run.root_id or run.id
    members = [root, *(r.id for r in store.descendants(root))]
    total = Spend()
    for rid in members:
        if rid != exclude:
            total = _add(total, spend_from_events(store.load_events(rid)))
    return total


def _tree_start(store: Any, run: RunRecord) -> float:
    root = store.get_run(run.root_id) if run.root_id and run.root_id != run.id else run
    return float((root or run).created_at or time.time())


def vault_key(config: GuardConfig) -> bytes:
    if config.vault_key is not None:
        return config.vault_key
    raw = os.environ.get("TETHER_VAULT_KEY")
    if not raw:
        raise VaultError("no vault key: set TETHER_VAULT_KEY or GuardConfig.vault_key")
    return decode_key(raw, "TETHER_VAULT_KEY")


__all__ = [
    "GuardConfig",
    "GuardInterceptor",
    "Guards",
    "RunGuardState",
    "Verdict",
    "spend_from_events",
]
