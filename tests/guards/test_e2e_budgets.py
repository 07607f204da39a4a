"""Budgets and limits on the real runtime: run, child and tenant budgets, depth, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from tether.guards import BudgetLimits

from . import agents_guarded as A
from .e2e_support import journal, make_guards, open_tether, search_forever


# ------------------------------------------------------------------------------- budgets
@pytest.mark.parametrize("budget,model_usage,cost,expected", [
    ({"steps": 7}, (1, 1), None, "run budget 'steps' exhausted: limit=7 spent=7"),
    ({"tool_calls": 3}, (1, 1), None, "run budget 'tool_calls' exhausted: limit=3 spent=3"),
    ({"tokens_in": 1000}, (300, 5), None, "run budget 'tokens_in' exhausted: limit=1000 "
                                          "spent=1200"),
    ({"tokens_out": 100}, (5, 40), None, "run budget 'tokens_out' exhausted: limit=100 "
                                         "spent=120"),
    ({"cost_usd": 0.05}, (1, 1), 0.02, "run budget 'cost_usd' exhausted: limit=0.05 "
                                       "spent=0.06"),
])
async def test_runaway_agent_halted_by_each_budget(db_path, embedder, budget, model_usage, cost,
                                                    expected):
    guards = make_guards(None)
    A.reset(search_forever(model_usage, cost), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "research"}, options={"budget": budget})
    assert run.status == "halted"
    assert run.reason == expected
    halted = next(e for e in journal(t, run.id) if e.kind == "run_halted")
    assert halted.data["details"]["guard"] == "budget"
    t.close()


async def test_wall_time_budget(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.stepper, 10_000, options={"budget": {"wall_time_s": 0.3}})
    assert run.status == "halted" and "'wall_time_s' exhausted: limit=0.3" in (run.reason or "")
    t.close()


async def test_children_draw_from_parent_budget_and_child_limit(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, max_depth=50)
    root = await t.run(A.forker, 0, options={"budget": {"child_runs": 3}})
    runs = t.runs(limit=100)
    halted = [r for r in runs if r.status == "halted"]
    assert len(runs) == 4  # root + 3 children: the 4th spawn had no budget left
    assert [r.depth for r in halted] == [3]
    assert halted[0].reason == "run budget 'child_runs' exhausted: limit=3 spent=3"
    assert t.get(root.id).status == "failed"  # its child chain ended halted
    t.close()


async def test_child_budget_survives_replays_of_the_parent(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.spawner, 5, options={"budget": {"child_runs": 2}})
    assert run.status == "halted"
    assert run.reason == "run budget 'child_runs' exhausted: limit=2 spent=2"
    assert len(t.runs(limit=100)) == 3
    t.close()


async def test_steps_of_children_count_against_parent(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.stepper, 100, options={"budget": {"steps": 10}})
    assert run.reason == "run budget 'steps' exhausted: limit=10 spent=10"
    t.close()


async def test_tenant_daily_budget_spans_runs(db_path):
    guards = make_guards(None, tenant_limits={"acme": BudgetLimits(steps=12)})
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    first = await t.run(A.stepper, 5, tenant="acme")
    second = await t.run(A.stepper, 5, tenant="acme")
    third = await t.run(A.stepper, 5, tenant="acme")
    other = await t.run(A.stepper, 5, tenant="other")
    assert (first.status, second.status, other.status) == ("succeeded",) * 3
    assert third.status == "halted"
    assert third.reason == "tenant acme (today) budget 'steps' exhausted: limit=12 spent=12"
    t.close()


# ------------------------------------------------------------------------ fork bombs
async def test_recursive_spawns_stop_at_depth_limit(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(A.forker, 0)
    runs = t.runs(limit=100)
    assert max(r.depth for r in runs) == 4 and len(runs) == 5
    deepest = next(r for r in runs if r.depth == 4)
    assert deepest.status == "failed" and "maximum depth is 4" in (deepest.error or "")
    assert t.get(root.id).status == "failed"
    t.close()


@pytest.mark.slow
async def test_tenant_concurrency_never_exceeded_and_excess_queues(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, tenant_limits={"acme": 4}, concurrency=64)
    ids = [t.submit(A.busy, i, tenant="acme") for i in range(500)]
    worker = t.worker()
    done = {"n": 0}

    def finished() -> bool:
        done["n"] += 1
        if done["n"] % 10:
            return False
        return not t.runs(status=("queued", "running", "waiting"), limit=1)

    await asyncio.wait_for(worker.serve(until=finished), timeout=240)
    runs = t.runs(limit=1000)
    assert len(runs) == 500 and all(r.status == "succeeded" for r in runs)
    assert A.STATE["max_active"] <= 4
    assert A.STATE["max_active"] == 4  # the limit was actually reached: runs queued, not failed
    assert sorted(r.result for r in runs) == list(range(500)) and len(ids) == 500
    t.close()
