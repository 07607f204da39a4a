"""What runs spent, recomputed from their journals (the single source of truth).

Used when a run's guard state is built (the spend of the other runs of its tree) and public as
`tether.guards.spend_from_events` (auditing a run). It must count exactly what the live
interceptor charges, which is why it classifies steps with the same `_steps` vocabulary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.guards._steps import GUARD_STEP, TOOL_STEP, guard_kind
from tether.guards.budget import Spend

if TYPE_CHECKING:
    from tether.store import Event, RunRecord


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
            if guard_kind(name) == "step":
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


def tree_start(store: Any, run: RunRecord) -> float:
    """When the run's tree started (its root's creation): the tree's wall-time clock."""
    root = store.get_run(run.root_id) if run.root_id and run.root_id != run.id else run
    return float((root or run).created_at or time.time())
