"""Budgets across a tree of runs, in one worker: concurrent children and grandchildren spending
from their root's budget, and a child or grandchild trying to raise its own limit at the spawn.

The issue's examples: a parent limited to 5 calls had 29-40 calls executed by 8 concurrent
children; `ctx.spawn(child, options={"budget": {...}})` let a child raise its own limit above its
parent's.
"""

from __future__ import annotations

import pytest

from .agents_hostile_budgets import (
    SPENT,
    bad_child_budget,
    budget_spend,
    fan_out,
    fresh_guards,
    journaled,
    open_tether,
    tree_of,
)


@pytest.mark.parametrize("children,calls,parallel", [
    (8, 10, False),  # the example
    (8, 10, True),   # ... and every child spends in parallel too
    (12, 3, False),
])
async def test_concurrent_children_share_the_parents_budget(db_path, children, calls,
                                                             parallel):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(fan_out, {"children": children, "calls": calls, "parallel": parallel},
                       options={"budget": {"tool_calls": 5}})
    runs = tree_of(t, root.id)
    assert len(runs) == children + 1
    # the children really ran at the same time
    assert any(r.status == "halted" for r in runs), [(r.status, r.reason) for r in runs]
    assert len(SPENT) <= 5, len(SPENT)
    assert journaled(t, runs, "tool_calls") <= 5
    assert budget_spend(t, root.id)["tool_calls"] == journaled(t, runs, "tool_calls")
    t.close()


async def test_nested_grandchildren_share_the_roots_budget(db_path):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(fan_out, {"children": 3, "grand": 3, "calls": 5},
                       options={"budget": {"tool_calls": 6, "child_runs": 20}})
    runs = tree_of(t, root.id)
    assert max(r.depth for r in runs) == 2
    assert len(SPENT) <= 6, len(SPENT)
    assert journaled(t, runs, "tool_calls") <= 6
    t.close()


@pytest.mark.parametrize("child_budget", [
    {"tool_calls": 100},                 # the example: a child raises its own limit
    {"tool_calls": 100, "steps": 10_000},
    {"steps": 1000},                     # a limit on something else only
    {},                                  # no limits at all
])
async def test_a_child_cannot_raise_its_budget_above_its_parents(db_path, child_budget):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(fan_out, {"children": 1, "calls": 20, "child_budget": child_budget},
                       options={"budget": {"tool_calls": 3}})
    runs = tree_of(t, root.id)
    child = next(r for r in runs if r.depth == 1)
    assert len(SPENT) <= 3 and journaled(t, runs, "tool_calls") <= 3
    assert child.status == "halted" and "'tool_calls' exhausted: limit=3" in (child.reason or "")
    # clamped at the spawn to what the parent had left, and the clamp is journaled
    assert child.options["budget"]["tool_calls"] == 3
    spawned = next(e for e in t.events(root.id) if e.kind == "child_spawned")
    clamp = spawned.data["meta"]["budget"]
    assert clamp["requested"] == child_budget and clamp["granted"]["tool_calls"] == 3
    t.close()


async def test_a_grandchild_cannot_raise_its_budget_above_its_parents(db_path):
    """The root allows 10 calls, the child asks for a narrower 2 (honoured), the grandchildren
    ask for 50: the child's subtree stays within 2."""
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(fan_out, {"children": 1, "grand": 2, "calls": 5,
                                 "child_budget": {"tool_calls": 2, "child_runs": 5},
                                 "grand_budget": {"tool_calls": 50}},
                       options={"budget": {"tool_calls": 10}})
    runs = tree_of(t, root.id)
    assert max(r.depth for r in runs) == 2
    assert journaled(t, [r for r in runs if r.depth >= 1], "tool_calls") <= 2
    assert len(SPENT) <= 2
    for grandchild in (r for r in runs if r.depth == 2):
        assert grandchild.options["budget"]["tool_calls"] <= 2
    t.close()


@pytest.mark.parametrize("budget,match", [
    ({"tool_calls": -1}, "tool_calls must be a non-negative number"),
    ({"stepz": 3}, "unknown budget"),
    ("lots", "must be a mapping"),
    ([["tool_calls", 100]], "must be a mapping"),
])
async def test_an_invalid_child_budget_is_refused_at_the_spawn(db_path, budget, match):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    run = await t.run(bad_child_budget, budget, options={"budget": {"tool_calls": 3}})
    assert run.status == "succeeded"
    assert "ctx.spawn" in run.result and "budget" in run.result and match in run.result
    assert len(tree_of(t, run.id)) == 1  # no child was created
    t.close()
