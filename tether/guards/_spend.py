"""What runs spent: recomputed from their journals, and reserved in the store's budget counters.

The journal is the single source of truth: `spend_from_events` (public as
`tether.guards.spend_from_events`, for auditing a run) counts exactly what the live interceptor
charges, which is why it classifies steps with the same `_steps` vocabulary.

The counters (`budget_spend`, one row per budget scope and metric) are what concurrent runs
reserve against: the operations below run inside one store transaction, so a check and the
charge it admits cannot be separated by another process's check. An effect's reservation is
recorded by its journal key (`budget_holds`), so an effect run again after a crash or an
in-doubt retry is counted once, as `spend_from_events` counts it. A scope the counters do not
know yet (a tree journaled by an older Tether) is seeded from its runs' journals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether.guards._steps import GUARD_STEP, TOOL_STEP, guard_kind
from tether.guards.budget import RunBudget, Spend, effect_usage
from tether.guards.errors import BudgetExceeded
from tether.store import vocabulary as v

if TYPE_CHECKING:
    from tether.store import Event, RunRecord, Tx

Totals = dict[str, Spend]  # scope (run id) -> what the scope's subtree reserved
# refused with the outermost exhausted budget (or None), the counters, and whether this call
# made the reservation (False: the effect held one already, from an earlier execution)
Reservation = tuple[BudgetExceeded | None, Totals, bool]


def spend_from_events(events: Sequence[Event], since: float | None = None) -> Spend:
    """What one run spent, recomputed from its journal (the single source of truth)."""
    sp = Spend()
    started: set[str] = set()
    for e in events:
        if since is not None and e.ts < since:
            continue
        name = e.name or ""
        if e.kind == v.STEP_STARTED and not name.startswith(GUARD_STEP):
            if e.key not in started:  # a retried in-doubt step is one step
                started.add(e.key or "")
                sp.steps += 1
                if name.startswith(TOOL_STEP):  # answered by the guards or not
                    sp.tool_calls += 1
        elif e.kind in (v.STEP_COMPLETED, v.STEP_FAILED) and e.key not in started and \
                not name.startswith(GUARD_STEP):
            started.add(e.key or "")  # a pure step journals its outcome only
            sp.steps += 1
            if name.startswith(TOOL_STEP):
                sp.tool_calls += 1
        if e.kind == v.STEP_COMPLETED and name.startswith(GUARD_STEP) and \
                guard_kind(name) == "step":
            sp.steps += 1
        if (call := v.model_call(e)) is not None:
            sp.tokens_in += call.input_tokens
            sp.tokens_out += call.output_tokens
            sp.cost_usd = round(sp.cost_usd + (call.cost_usd or 0.0), 10)
        elif e.kind == v.CHILD_SPAWNED:
            sp.child_runs += 1
            sp.steps += 1
    return sp


def _add(a: Spend, b: Spend) -> Spend:
    return Spend(a.steps + b.steps, a.tokens_in + b.tokens_in, a.tokens_out + b.tokens_out,
                 round(a.cost_usd + b.cost_usd, 10), max(a.wall_time_s, b.wall_time_s),
                 a.tool_calls + b.tool_calls, a.child_runs + b.child_runs)


def subtree_spend(store: Any, scope: str) -> dict[str, float]:
    """What a run and all its descendants spent, from their journals, as counter amounts."""
    total = Spend()
    for rid in (scope, *(r.id for r in store.descendants(scope))):
        total = _add(total, spend_from_events(store.load_events(rid)))
    return {k: v for k, v in total.to_json().items() if k != "wall_time_s"}


def tree_spend(store: Any, run: RunRecord, exclude: str) -> Spend:
    """Spend of every other run in this run's tree (root and all descendants), from journals."""
    root = run.root_id or run.id
    members = [root, *(r.id for r in store.descendants(root))]
    total = Spend()
    for rid in members:
        if rid != exclude:
            total = _add(total, spend_from_events(store.load_events(rid)))
    return total


# ------------------------------------------------------------ operations on the counters
def _read(tx: Tx, scopes: Sequence[str], seeds: Mapping[str, dict[str, float]],
          rebase: bool = False) -> Totals:
    """The scopes' counters; a scope without any is seeded — and with `rebase`, a seeded
    scope's counters are replaced by the seed whatever they hold."""
    rows = tx.budget_spend(scopes)
    for scope in scopes:
        seed = seeds.get(scope)
        if seed is None or (scope in rows and not rebase):
            continue
        current = rows.get(scope, {})
        tx.add_budget_spend([scope], {m: v - current.get(m, 0.0) for m, v in seed.items()})
        rows[scope] = dict(seed)
    return {scope: Spend.from_json(rows.get(scope, {})) for scope in scopes}


def reserve(budget: RunBudget, run_id: str, key: str, kind: str, *, rebase: bool = False
            ) -> Callable[[Tx], Reservation]:
    """The operation reserving one effect of `kind` in every scope of `budget`: refused (with
    the outermost exhausted budget, nothing written) or counted, atomically. An effect that
    already holds a reservation (a re-run) passes without being counted again. Never raises:
    it commits with the run's other writes.

    `rebase`: the run was alone in its tree and counted in memory until now; its exact totals
    (the seeds) replace whatever the counters hold (a reservation of an attempt that crashed
    before its effect was journaled, which the totals therefore do not count either)."""
    scopes = [s.run_id for s in budget.scopes]
    seeds = dict(budget.seeds)
    amounts = effect_usage(kind)
    first_exceeded = budget.first_exceeded

    def op(tx: Tx) -> Reservation:
        totals = _read(tx, scopes, seeds, rebase)
        if not tx.hold_budget(run_id, key) and not rebase:
            return None, totals, False
        exceeded = first_exceeded(totals, kind)
        if exceeded is not None:
            tx.release_budget_hold(run_id, key)
            return exceeded, totals, False
        tx.add_budget_spend(scopes, amounts)
        for scope in scopes:
            totals[scope].add(amounts)
        return None, totals, True

    return op


def charge(budget: RunBudget, run_id: str, measured: Mapping[str, float],
           unreserved: tuple[str, str] | None = None) -> Callable[[Tx], None]:
    """The operation adding what an effect turned out to use (tokens, cost) to every scope,
    and — for an effect nobody reserved (`unreserved` = (key, kind): another interceptor
    answered it first) — its counters, unchecked: it happened."""
    scopes = [s.run_id for s in budget.scopes]
    seeds = dict(budget.seeds)
    amounts = {k: v for k, v in measured.items() if v}

    def op(tx: Tx) -> None:
        _read(tx, scopes, seeds)
        if unreserved is not None and tx.hold_budget(run_id, unreserved[0]):
            tx.add_budget_spend(scopes, effect_usage(unreserved[1]))
        if amounts:
            tx.add_budget_spend(scopes, amounts)

    return op


def release(budget: RunBudget, run_id: str, key: str, kind: str) -> Callable[[Tx], None]:
    """The operation giving back an effect's reservation (refused after it was reserved)."""
    scopes = [s.run_id for s in budget.scopes]
    amounts = {k: -v for k, v in effect_usage(kind).items()}

    def op(tx: Tx) -> None:
        if tx.release_budget_hold(run_id, key):
            tx.add_budget_spend(scopes, amounts)

    return op
