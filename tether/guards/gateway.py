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

This module holds `Guards` itself (its run and tenant-day state, and policy decisions) and is the
public home of the names below; the work is split into private modules:
- `_config`: `GuardConfig` and the vault key;
- `_state`: `RunGuardState` and the tenant-day ledgers;
- `_steps`: journal step names and how effects are charged;
- `_spend`: spend recomputed from journals (`spend_from_events`, `tree_spend`);
- `_interceptor`: `GuardInterceptor`;
- `_toolcall`: `Guards.tool` (verdicts, answered steps, retries, breaker answers);
- `_approval_wait`: the durable wait for approvals;
- `_modelcall`: `Guards.model` (loop interventions, PII masking, vault journaling).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig as GuardConfig
from tether.guards._config import vault_key as vault_key
from tether.guards._interceptor import GuardInterceptor as GuardInterceptor
from tether.guards._modelcall import call_model
from tether.guards._spend import spend_from_events as spend_from_events
from tether.guards._spend import tree_spend as tree_spend
from tether.guards._spend import tree_start
from tether.guards._state import RunGuardState as RunGuardState
from tether.guards._state import TenantDay, store_key
from tether.guards._steps import ANSWERED as ANSWERED
from tether.guards._steps import APPROVAL_SIGNAL as APPROVAL_SIGNAL
from tether.guards._steps import GUARD_STEP as GUARD_STEP
from tether.guards._steps import SCRATCH_KEY as SCRATCH_KEY
from tether.guards._steps import TOOL_STEP as TOOL_STEP
from tether.guards._toolcall import Verdict as Verdict
from tether.guards._toolcall import call_tool
from tether.guards.budget import Ledger, Limits, effect_usage, utc_day
from tether.guards.loops import Intervention, LoopDetector
from tether.guards.pii import PiiMasker, Vault
from tether.guards.policy import Decision as PolicyDecision
from tether.guards.policy import PolicySet, ToolInfo
from tether.guards.retry import BreakerBoard

if TYPE_CHECKING:
    from tether.models import Model, ModelResponse
    from tether.runtime import Context
    from tether.tools import Tool, ToolRegistry, ToolResult


class Guards:
    def __init__(self, config: GuardConfig | None = None,
                 tools: ToolRegistry | None = None) -> None:
        self.config = config or GuardConfig()
        self.tools = tools
        self.breakers = BreakerBoard(self.config.breaker_threshold,
                                     self.config.breaker_cooldown_s)
        # (store, tenant) -> today's ledger, shared by every run of this process: a charge is
        # seen by the tenant's other runs at their next check, not when they next start
        self._tenant_days: dict[tuple[str, str], TenantDay] = {}

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
                      started_at=tree_start(ctx.store, run))
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
        key = (store_key(ctx.store), ctx.tenant)
        td = self._tenant_days.get(key)
        if td is None or td.day != day:
            td = TenantDay(Ledger(limits, scope=f"tenant {ctx.tenant} (today)"), day)
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
        registry = registry or self.tools
        if registry is None:
            raise ValueError("Guards.tool needs a ToolRegistry (Guards(tools=...) or registry=)")
        return await call_tool(self, ctx, registry, name, arguments)

    # ----------------------------------------------------------------------- models
    async def model(self, ctx: Context, model: Model, messages: Sequence[Any], *,
                    pinned: int = 0, **kwargs: Any) -> ModelResponse:
        """Mask PII, apply a pending loop intervention, call the model, watch for loops.

        `pinned`: how many leading messages (the prompt: system, few-shot examples, goal) an
        intervention's history trim keeps; 0 keeps the system messages and the first user
        message."""
        return await call_model(self, ctx, model, messages, pinned=pinned, **kwargs)

    def pending_intervention(self, ctx: Context) -> Intervention | None:
        return self.state(ctx).pending

    def flags(self, ctx: Context) -> list[dict[str, Any]]:
        return list(self.state(ctx).flags)


__all__ = [
    "GuardConfig",
    "GuardInterceptor",
    "Guards",
    "RunGuardState",
    "Verdict",
    "spend_from_events",
]
