"""Budgets under concurrency, on the real runtime: parallel calls in one run. A hostile agent
makes many calls at once (`ctx.gather` of tool calls, model calls, plain steps or spawns) so that
each checks the budget before any is counted.

The issue's example: 20 calls ran under `tool_calls=5` via `ctx.gather`. Children and
grandchildren are in `test_hostile_budgets_trees.py`, several worker processes in
`test_hostile_budgets_workers.py`, the ledger rebuilt on replay in
`test_hostile_budgets_replay.py`; the agents in `agents_hostile_budgets.py`.
"""

from __future__ import annotations

import asyncio

import pytest

from tether.guards import (
    BudgetLimits,
)
from tether.guards.budget import utc_day
from tether.models import ScriptedModel

from .agents_hostile_budgets import (
    SPENT,
    STATE,
    denied_then_allowed,
    fresh_guards,
    gather_direct,
    gather_gateway,
    gather_models,
    gather_spawns,
    gather_steps,
    journaled,
    open_tether,
    tree_of,
)
from .e2e_support import say


@pytest.mark.parametrize("agent,n,budget,metric", [
    (gather_gateway, 20, {"tool_calls": 5}, "tool_calls"),   # the example
    (gather_gateway, 50, {"tool_calls": 1}, "tool_calls"),
    (gather_gateway, 20, {"steps": 4}, "steps"),
    (gather_direct, 20, {"tool_calls": 5}, "tool_calls"),
    (gather_steps, 30, {"steps": 7}, "steps"),
])
async def test_a_gather_cannot_outrun_the_run_budget(db_path, agent, n, budget, metric):
    guards = fresh_guards()
    t = open_tether(db_path, guards)
    run = await t.run(agent, n, options={"budget": budget})
    limit = budget[metric]
    assert run.status == "halted", (run.status, run.error, len(SPENT))
    assert run.reason == f"run budget '{metric}' exhausted: limit={limit} spent={limit}"
    assert len(SPENT) <= limit, SPENT
    assert journaled(t, [run], metric) <= limit
    t.close()


async def test_a_gather_of_model_calls_cannot_outrun_the_step_budget(db_path):
    guards = fresh_guards()
    model = ScriptedModel(fn=lambda call: say("ok", usage=(10, 2)))
    STATE["model"] = model
    t = open_tether(db_path, guards)
    run = await t.run(gather_models, 20, options={"budget": {"steps": 5}})
    assert run.status == "halted" and "'steps' exhausted: limit=5 spent=5" in (run.reason or "")
    assert len(model.calls) <= 5
    t.close()


async def test_refused_direct_calls_release_their_reservation(db_path):
    """A call the policy refuses before it starts does not use the budget: three allowed calls
    still fit in `tool_calls=3` after five refusals."""
    guards = fresh_guards()
    t = open_tether(db_path, guards)
    run = await t.run(denied_then_allowed, {"denied": 5, "allowed": 3},
                      options={"budget": {"tool_calls": 3}})
    assert run.status == "succeeded", (run.status, run.reason, run.error)
    assert run.result == 3 and SPENT == ["a0", "a1", "a2"]
    assert journaled(t, [run], "tool_calls") == 3
    t.close()


@pytest.mark.parametrize("n,limit", [(8, 3), (20, 1)])
async def test_spawns_in_a_gather_cannot_outrun_the_child_budget(db_path, n, limit):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(gather_spawns, n, options={"budget": {"child_runs": limit}})
    assert root.status == "halted", (root.status, root.reason, root.error)
    assert root.reason == f"run budget 'child_runs' exhausted: limit={limit} spent={limit}"
    assert len(tree_of(t, root.id)) - 1 <= limit
    t.close()


@pytest.mark.parametrize("runs,n,limit", [(1, 20, 5), (4, 10, 8)])
async def test_gathers_cannot_outrun_the_tenants_day(db_path, runs, n, limit):
    """Tenant-day budgets reserve too: the runs of a tenant in one worker, each calling in
    parallel, stay within the day's limit."""
    guards = fresh_guards(tenant_limits={"acme": BudgetLimits(tool_calls=limit)})
    t = open_tether(db_path, guards)
    ids = [t.submit(gather_gateway, n, tenant="acme") for _ in range(runs)]
    day = utc_day()
    await asyncio.wait_for(t.worker().serve(until=lambda: all(t.get(r).finished for r in ids)),
                           timeout=60)
    if utc_day() != day:
        pytest.skip("the runs straddled midnight UTC")
    halted = [t.get(r) for r in ids if t.get(r).status == "halted"]
    assert halted and all(f"tenant acme (today) budget 'tool_calls' exhausted: limit={limit}"
                          in (r.reason or "") for r in halted)
    assert len(SPENT) <= limit, len(SPENT)
    assert t.store.get_usage("acme", day).get("tool_calls", 0) <= limit
    t.close()
