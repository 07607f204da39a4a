"""A run's guard state (`RunGuardState`) and where it comes from (`RunStates`).

A run's state lives in `ctx.scratch`; the runtime rebuilds it on every replay (the interceptor
feeds it from the journal), so nothing here is persisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig
from tether.guards._spend import tree_spend, tree_start
from tether.guards._steps import SCRATCH_KEY
from tether.guards._tenant import TenantDays
from tether.guards.budget import BudgetLimits, Ledger
from tether.guards.loops import Intervention, LoopDetector
from tether.guards.pii import PiiMasker, Vault
from tether.guards.policy import Policy, PolicySet

if TYPE_CHECKING:
    from tether.runtime import Context


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


class RunStates:
    """The guard state of each run, made on first use from the deployment's configuration, the
    run's own budget and the spend of the rest of its tree."""

    def __init__(self, config: GuardConfig, tenants: TenantDays) -> None:
        self.config = config
        self.tenants = tenants

    def of(self, ctx: Context) -> RunGuardState:
        st = ctx.scratch.get(SCRATCH_KEY)
        if st is None:
            st = self._new(ctx)
            ctx.scratch[SCRATCH_KEY] = st
        assert isinstance(st, RunGuardState)
        return st

    def _new(self, ctx: Context) -> RunGuardState:
        cfg = self.config
        run = ctx.run
        limits = BudgetLimits.from_json(run.options["budget"]) if "budget" in run.options \
            else cfg.run_limits
        # A run starting picks up what the tenant's runs on other workers spent today.
        self.tenants.ledger(ctx, refresh=True)
        # The run's limits cover its whole tree: the other runs of the tree have already spent
        # part of it (children draw from the parent's budget, and the parent from theirs).
        tree = Ledger(limits, scope="run", spend=tree_spend(ctx.store, run, exclude=run.id),
                      started_at=tree_start(ctx.store, run))
        # This run's own effects, replayed ones included (spawns too), are charged in `after`.
        own = Ledger(BudgetLimits(), scope="run", parent=tree)
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
