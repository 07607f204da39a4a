"""Guards wired into the runtime: an interceptor on every effect plus the gateway for model-proposed
tool calls.

Two layers, on purpose:
- `GuardInterceptor` sees *every* effect (`ctx.step`, `ctx.spawn`): budgets are reserved before
  each one — across the run's tree, in the store when other runs share it — and what it
  measured is charged after (run budgets also on replay, so the run's own spend is rebuilt from
  the journal; tenant-day usage only live, into the store's usage counters); every `tool:*` step
  is checked against the policy, so even agent code that calls `ctx.tool` directly cannot
  execute a denied, unapproved or honeypot tool; tool calls (those the guards answered too) and
  errors feed the loop detector.
- `Guards.tool` / `Guards.model` are what an agent loop calls with what the model proposed: they
  unmask PII placeholders for the tool, decide, wait durably for approvals, and mask PII and
  apply loop interventions before a model call. A refusal (denial, denied approval, open circuit
  breaker) or a honeypot's simulated success is the *tool step's own answer*: the interceptor
  raises `ShortCircuit` with it, so the journal holds one `tool:<name>` step per proposed call
  whatever was decided, with the decision in its `step_started` event.

Per-run guard state lives in `ctx.scratch`, which the runtime rebuilds on every replay.

`Guards` is the facade a deployment builds and an agent calls; the work is done by one class per
concept, each in a private module, each given what it needs (none of them knows `Guards`):
- `_config`: `GuardConfig` (what a deployment sets) and the vault key;
- `_tenant`: `TenantDays`, the tenants' budgets for the current UTC day;
- `_state`: `RunGuardState` and `RunStates`, which makes a run's state on first use;
- `_policygate`: `PolicyGate`, the policy decision on a proposed call with the tool's metadata;
- `_verdict`: `ToolVerdict`, that decision carried to the interceptor in the call's `Effect.meta`;
- `_interceptor`: `GuardInterceptor`, the guards on every effect;
- `_toolcall`: `ToolGateway` (`Guards.tool`: verdicts, answered steps, retries);
- `_approval_wait`: the durable wait for approvals;
- `_modelcall`: `ModelGateway` (`Guards.model`: loop interventions, PII masking, the vault);
- `_steps`: journal step names and how effects are charged; `_spend`: spend from journals,
  and the reservations in the store's budget counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig as GuardConfig
from tether.guards._config import vault_key as vault_key
from tether.guards._interceptor import GuardInterceptor as GuardInterceptor
from tether.guards._modelcall import ModelGateway
from tether.guards._policygate import PolicyGate
from tether.guards._spend import spend_from_events as spend_from_events
from tether.guards._spend import tree_spend as tree_spend
from tether.guards._state import RunGuardState as RunGuardState
from tether.guards._state import RunStates
from tether.guards._steps import ANSWERED as ANSWERED
from tether.guards._steps import APPROVAL_SIGNAL as APPROVAL_SIGNAL
from tether.guards._steps import GUARD_STEP as GUARD_STEP
from tether.guards._steps import SCRATCH_KEY as SCRATCH_KEY
from tether.guards._steps import TOOL_STEP as TOOL_STEP
from tether.guards._tenant import TenantDays
from tether.guards._toolcall import ToolGateway
from tether.guards._verdict import ToolVerdict as ToolVerdict
from tether.guards.budget import Ledger
from tether.guards.loops import Intervention
from tether.guards.policy import PolicyDecision, ToolInfo
from tether.guards.retry import BreakerBoard

if TYPE_CHECKING:
    from tether.models import Model, ModelResponse
    from tether.runtime import Context
    from tether.tools import ToolRegistry, ToolResult


class Guards:
    def __init__(self, config: GuardConfig | None = None,
                 tools: ToolRegistry | None = None) -> None:
        self.config = config or GuardConfig()
        self.breakers = BreakerBoard(self.config.breaker_threshold,
                                     self.config.breaker_cooldown_s)
        # each tenant's ledger for today, shared by every run of this process: a charge is
        # seen by the tenant's other runs at their next check, not when they next start
        self.tenants = TenantDays(self.config)
        self.states = RunStates(self.config, self.tenants)
        self.gate = PolicyGate(tools)
        self._tool_gateway = ToolGateway(self.config, self.states, self.gate)
        self._model_gateway = ModelGateway(self.config, self.states)

    @property
    def tools(self) -> ToolRegistry | None:
        """The registry `Guards.tool` calls by default and the policy reads tool metadata from."""
        return self.gate.tools

    @tools.setter
    def tools(self, registry: ToolRegistry | None) -> None:
        self.gate.tools = registry

    # ------------------------------------------------------------------ runtime hook
    def interceptors(self) -> list[GuardInterceptor]:
        """Pass to `Tether(interceptors=...)` / `Worker(interceptors=...)`."""
        return [GuardInterceptor(self.states, self.tenants, self.gate, self.breakers)]

    def state(self, ctx: Context) -> RunGuardState:
        return self.states.of(ctx)

    def tenant_ledger(self, ctx: Context, *, now: float | None = None,
                      refresh: bool = False) -> Ledger | None:
        """Today's ledger of the run's tenant (None without tenant limits); see `TenantDays`."""
        return self.tenants.ledger(ctx, now=now, refresh=refresh)

    # ----------------------------------------------------------------- policy helpers
    def tool_info(self, name: str) -> ToolInfo:
        return self.gate.tool_info(name)

    def decide(self, st: RunGuardState, name: str, args: Any) -> PolicyDecision:
        return self.gate.decide(st.policy, name, args)

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
        return await self._tool_gateway.call(ctx, registry, name, arguments)

    # ----------------------------------------------------------------------- models
    async def model(self, ctx: Context, model: Model, messages: Sequence[Any], *,
                    pinned: int = 0, **kwargs: Any) -> ModelResponse:
        """Mask PII, apply a pending loop intervention, call the model, watch for loops.

        `pinned`: how many leading messages (the prompt: system, few-shot examples, goal) an
        intervention's history trim keeps; 0 keeps the system messages and the first user
        message."""
        return await self._model_gateway.call(ctx, model, messages, pinned=pinned, **kwargs)

    def pending_intervention(self, ctx: Context) -> Intervention | None:
        return self.state(ctx).pending

    def flags(self, ctx: Context) -> list[dict[str, Any]]:
        return list(self.state(ctx).flags)


__all__ = [
    "GuardConfig",
    "GuardInterceptor",
    "Guards",
    "RunGuardState",
    "ToolVerdict",
    "spend_from_events",
]
