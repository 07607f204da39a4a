"""A run's guard state (`RunGuardState`) and where it comes from (`RunStates`).

A run's state lives in `ctx.scratch`; the runtime rebuilds it on every replay (the interceptor
feeds it from the journal), so nothing here is persisted — except the budget counters, which are
the store's: a run's budget starts from what its scopes' counters hold (`RunBudget`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig
from tether.guards._spend import spend_from_events, subtree_spend
from tether.guards._steps import SCRATCH_KEY
from tether.guards._tenant import TenantDays
from tether.guards.budget import BudgetLimits, BudgetScope, RunBudget, Spend
from tether.guards.loops import Intervention, LoopDetector
from tether.guards.pii import PiiMasker, Vault
from tether.guards.policy import Policy, PolicySet

if TYPE_CHECKING:
    from tether.runtime import Context
    from tether.store import RunRecord


@dataclass
class RunGuardState:
    budget: RunBudget
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
    # the gateway's verdicts not yet taken by the interceptor (id -> ToolVerdict): only these
    # clear a tool step (`ToolVerdict.take`), so agent code cannot forge one
    verdicts: dict[int, Any] = field(default_factory=dict)
    # live tool steps running now (journal key -> call fingerprint): identical calls made at
    # once (one reply's parallel calls) count for the loop detector before they run
    in_flight: dict[str, str] = field(default_factory=dict)
    # the tenants of the run and of every run above it, its own first (`_tree_tenants`): the
    # tenant days every effect is reserved against and charged to, found once per execution
    tenants: list[str] = field(default_factory=list)


class RunStates:
    """The guard state of each run, made on first use from the deployment's configuration and
    the run's budget scopes (with what their counters in the store hold)."""

    def __init__(self, config: GuardConfig, tenants: TenantDays) -> None:
        self.config = config
        self.tenants = tenants
        # the recognizers are stateless regexes and checkers, the same for every run: built
        # once (~0.2 ms each time) instead of per run; each run's masker keeps its own cache
        self._masker: tuple[tuple[Any, ...], PiiMasker] | None = None

    def _pii_masker(self) -> PiiMasker:
        """The masker every run's is a `fresh` copy of (remade if the patterns changed)."""
        extra = tuple(self.config.pii_patterns)
        if self._masker is None or self._masker[0] != extra:
            self._masker = (extra, PiiMasker(list(extra)))
        return self._masker[1]

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
        # the runs above this one, walked once for the tenants and the budget scopes
        chain = _ancestry(ctx.store, run)
        tenants = _tree_tenants(ctx.store, run, chain)
        # A run starting picks up what its tenants' runs on other workers spent today.
        self.tenants.ledgers(ctx, tenants, refresh=True)
        policy = cfg.policy
        bound = [cfg.tenant_policies[t] for t in tenants if t in cfg.tenant_policies]
        if bound:
            base = list(policy.policies) if isinstance(policy, PolicySet) else (
                [policy] if policy else [])
            policy = PolicySet(*bound, *base)
        return RunGuardState(
            budget=run_budget(ctx.store, run, cfg.run_limits, chain),
            detector=LoopDetector(cfg.embedder, cfg.loops),
            vault=Vault(),
            masker=self._pii_masker().fresh(),
            policy=policy,
            tenants=tenants,
        )


def _ancestry(store: Any, run: RunRecord) -> list[RunRecord]:
    """`run` and every run above it that the store still has, `run` first."""
    chain = [run]
    while chain[-1].parent_id:
        parent = store.get_run(chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
    return chain


def _tree_tenants(store: Any, run: RunRecord,
                  chain: list[RunRecord] | None = None) -> list[str]:
    """The tenants of `run` and of every run above it, each once, the run's own first
    (`chain`: `_ancestry(store, run)`, if the caller has it).

    `ctx.spawn(..., tenant="other")` creates a child in another tenant: judged by that tenant's
    policy alone, a child of a locked-down tenant ran the tool its tenant denies; charged to
    that tenant's day alone, a tenant at its daily cap kept spending through children in a
    tenant with room. A run is bound by the tenant policy and the tenant-day budget of every
    run it descends from as well as its own, and its usage counts in each of their days."""
    tenants: list[str] = []
    for r in chain if chain is not None else _ancestry(store, run):
        if r.tenant not in tenants:
            tenants.append(r.tenant)
    return tenants


_UNLIMITED = BudgetLimits()
# the deployment's default limits last compared with no limits, and the answer: the same
# (frozen) object every run, so its fields are compared once, not on every run start
_last_default: tuple[BudgetLimits, bool] = (_UNLIMITED, True)


def _unlimited(limits: BudgetLimits) -> bool:
    global _last_default
    last, answer = _last_default
    if limits is not last:
        answer = limits == _UNLIMITED
        _last_default = (limits, answer)
    return answer


def run_budget(store: Any, run: RunRecord, default: BudgetLimits,
               chain: list[RunRecord] | None = None) -> RunBudget:
    """The run's budget scopes and what has been spent from them.

    Every run from the root down to this one that has limits (its own `options["budget"]`, else
    the deployment's `run_limits`) bounds its subtree. A root that has spawned nothing is the
    only run that can spend from its budget: it counts from its own journal and reserves in
    memory ("local"). Any other run reserves in the store's counters ("store"); a scope the
    counters do not know yet is seeded from its runs' journals. `chain`: `_ancestry(store,
    run)`, if the caller has it."""
    if run.parent_id is None and "budget" not in run.options and _unlimited(default):
        return RunBudget([], mode="off")  # what the scopes below come to: none (a root's only)
    scopes = budget_scopes(store, run, default, chain)
    if not scopes:
        return RunBudget([], mode="off")
    if run.parent_id is None and not store.list_runs(parent_id=run.id, limit=1):
        events = store.load_events(run.id)
        budget = RunBudget(scopes, mode="local")
        budget.totals[run.id] = spend_from_events(events)
        budget.held = {e.key for e in events if e.kind == "step_started" and e.key}
        return budget
    budget = RunBudget(scopes, mode="store")
    for scope in scopes:
        stored = store.get_budget_spend(scope.run_id)
        if not stored:
            stored = budget.seeds[scope.run_id] = subtree_spend(store, scope.run_id)
        budget.totals[scope.run_id] = Spend.from_json(stored)
    return budget


def budget_scopes(store: Any, run: RunRecord, default: BudgetLimits,
                  chain: list[RunRecord] | None = None) -> list[BudgetScope]:
    """The runs from the root down to `run` that have limits, root first."""
    if chain is None:
        chain = _ancestry(store, run)
    scopes = []
    for r in reversed(chain):
        limits = BudgetLimits.from_json(r.options["budget"]) if "budget" in r.options \
            else default
        if limits != _UNLIMITED:  # not `to_json()`: its `asdict` copies, on every run start
            scopes.append(BudgetScope(r.id, limits, float(r.created_at or 0.0),
                                      "child run" if r.parent_id else "run"))
    return scopes
