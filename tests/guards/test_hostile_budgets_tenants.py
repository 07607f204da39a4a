"""Tenant-day budgets across a tree whose runs belong to several tenants.

The issue: `ctx.spawn(agent, input, tenant="globex")` made a child whose effects were checked
against, and charged to, globex's day only — so acme, at its daily cap, kept spending through
children in a tenant with room (or no cap at all). A run is bound by, and charged to, the day of
every tenant of its tree, as it is bound by their policies.
"""

from __future__ import annotations

from typing import Any

import pytest

from tether import Tether
from tether.guards import BudgetLimits, spend_from_events
from tether.guards.budget import USAGE_METRICS, utc_day
from tether.models import ScriptedModel

from .agents_hostile_budgets import (
    STATE,
    fresh_guards,
    model_caller,
    open_tether,
    spawn_into,
    tree_of,
)
from .e2e_support import replay_only, say

ABOVE = "(today; tenant of a run above this one)"


def scripted() -> ScriptedModel:
    """Every call: 10 tokens in, 2 out, $0.01."""
    model = ScriptedModel(fn=lambda call: say("ok", usage=(10, 2), cost=0.01))
    STATE["model"] = model
    return model


def usage_of(t: Tether, runs: list[Any]) -> dict[str, float]:
    """What `runs` journaled, as the store's usage counters hold it (metrics used only)."""
    total: dict[str, float] = {}
    for r in runs:
        spent = spend_from_events(t.events(r.id)).to_json()
        for metric in USAGE_METRICS:
            if spent[metric]:
                total[metric] = total.get(metric, 0) + spent[metric]
    return total


def same_usage(stored: dict[str, float], journaled: dict[str, float]) -> bool:
    return stored.keys() == journaled.keys() and all(
        stored[m] == pytest.approx(journaled[m]) for m in stored)


def today_or_skip(day: str) -> None:
    if utc_day() != day:
        pytest.skip("the runs straddled midnight UTC: their usage is split over two days")


@pytest.mark.parametrize("limits,budget,limit", [
    (BudgetLimits(cost_usd=0.03), "cost_usd", "0.03"),
    (BudgetLimits(tokens_in=30), "tokens_in", "30"),
    # the parent's spawns are acme's steps too: 2 spawns + 3 model calls
    (BudgetLimits(steps=5), "steps", "5"),
])
async def test_a_child_in_another_tenant_is_bound_by_its_parents_tenant_day(
        db_path, limits, budget, limit):
    """acme allows 3 model calls today; its run spawns children into globex (no cap): the
    children's calls stop at acme's cap, and the refusal names acme."""
    guards = fresh_guards(tenant_limits={"acme": limits})
    model = scripted()
    t = open_tether(db_path, guards, max_depth=4)
    day = utc_day()
    root = await t.run(spawn_into, {"children": 3, "calls": 2, "tenant": "globex"},
                       tenant="acme")
    today_or_skip(day)
    runs = tree_of(t, root.id)
    children = sorted((r for r in runs if r.depth == 1), key=lambda r: r.id)
    assert [c.tenant for c in children] == ["globex", "globex"]
    assert len(model.calls) == 3
    refused = f"tenant acme {ABOVE} budget '{budget}' exhausted: limit={limit} spent={limit}"
    assert children[0].status == "succeeded"
    assert (children[1].status, children[1].reason) == ("halted", refused)
    # the parent's next spawn is refused by its own tenant's day
    assert root.status == "halted"
    assert root.reason == f"tenant acme (today) budget '{budget}' exhausted: limit={limit} " \
                          f"spent={limit}"
    # acme's usage counters hold the whole tree's usage, globex's its children's
    assert same_usage(t.store.get_usage("acme", day), usage_of(t, runs))
    assert same_usage(t.store.get_usage("globex", day), usage_of(t, children))
    assert t.store.get_usage("acme", day)["tokens_in"] == 30
    t.close()


async def test_the_usage_of_a_child_in_another_tenant_counts_in_both_tenants(db_path):
    """Without any tenant limits (usage recorded for the reports): a cross-tenant child's
    usage is in its own tenant's counters and in its parent's."""
    guards = fresh_guards()
    scripted()
    t = open_tether(db_path, guards, max_depth=4)
    day = utc_day()
    root = await t.run(spawn_into, {"children": 2, "calls": 2, "tenant": "globex"},
                       tenant="acme")
    today_or_skip(day)
    assert root.status == "succeeded" and root.result == [2, 2]
    runs = tree_of(t, root.id)
    children = [r for r in runs if r.depth == 1]
    acme = t.store.get_usage("acme", day)
    assert acme["steps"] == 6 and acme["child_runs"] == 2 and acme["tokens_in"] == 40
    assert acme["cost_usd"] == pytest.approx(0.04)
    assert same_usage(acme, usage_of(t, runs))
    assert same_usage(t.store.get_usage("globex", day), usage_of(t, children))
    t.close()


async def test_a_child_in_the_same_tenant_is_charged_once(db_path):
    guards = fresh_guards(tenant_limits={"acme": BudgetLimits(cost_usd=0.03)})
    model = scripted()
    t = open_tether(db_path, guards, max_depth=4)
    day = utc_day()
    root = await t.run(spawn_into, {"children": 3, "calls": 2}, tenant="acme")
    today_or_skip(day)
    runs = tree_of(t, root.id)
    children = sorted((r for r in runs if r.depth == 1), key=lambda r: r.id)
    assert [c.tenant for c in children] == ["acme", "acme"]
    assert len(model.calls) == 3
    assert children[1].reason == \
        "tenant acme (today) budget 'cost_usd' exhausted: limit=0.03 spent=0.03"
    usage = t.store.get_usage("acme", day)
    assert same_usage(usage, usage_of(t, runs))  # each effect once, not once per tree tenant
    assert usage["steps"] == 5 and usage["tokens_in"] == 30
    assert t.store.get_usage("globex", day) == {}
    t.close()


async def test_replays_charge_neither_tenant_again(db_path):
    """Each child suspends on a durable timer after its first call and is replayed when it
    wakes; the parent is replayed after every join; then every run of the tree is re-executed
    purely from its journal with fresh guards (a new worker after a crash). Both tenants'
    counters hold each live effect once."""
    limits = {"acme": BudgetLimits(steps=100), "globex": BudgetLimits(steps=100)}
    guards = fresh_guards(tenant_limits=limits)
    model = scripted()
    t = open_tether(db_path, guards, max_depth=4)
    day = utc_day()
    root = await t.run(spawn_into, {"children": 2, "calls": 3, "tenant": "globex",
                                    "pause": 1.05}, tenant="acme")
    today_or_skip(day)
    assert root.status == "succeeded" and root.result == [3, 3], (root.status, root.reason)
    runs = tree_of(t, root.id)
    children = [r for r in runs if r.depth == 1]
    assert len(model.calls) == 6
    for run in runs:  # every run was executed again (replaying its effects) after a pause
        assert any(e.kind == "run_resumed" for e in t.events(run.id)), run.id
    acme, globex = t.store.get_usage("acme", day), t.store.get_usage("globex", day)
    assert same_usage(acme, usage_of(t, runs)) and acme["steps"] == 8
    assert same_usage(globex, usage_of(t, children)) and globex["steps"] == 6
    fresh = fresh_guards(tenant_limits=limits)
    STATE["model"] = model
    assert await replay_only(t, fresh, root.id, spawn_into) == root.result
    for child in children:
        assert await replay_only(t, fresh, child.id, model_caller) == 3
    assert len(model.calls) == 6
    assert t.store.get_usage("acme", day) == acme
    assert t.store.get_usage("globex", day) == globex
    t.close()


@pytest.mark.parametrize("limits,refused,other,left", [
    # acme (the parent's) is the tighter: the child's call reserved in globex first, then
    # acme refused it; globex's reservation is given back
    ({"acme": BudgetLimits(steps=5), "globex": BudgetLimits(steps=6)}, "acme", "globex", 3),
    # globex (the child's own) is the tighter: it refuses before acme is asked
    ({"acme": BudgetLimits(steps=8), "globex": BudgetLimits(steps=3)}, "globex", "acme", 2),
])
async def test_the_tighter_tenant_refuses_and_the_other_keeps_its_room(
        db_path, limits, refused, other, left):
    guards = fresh_guards(tenant_limits=limits)
    model = scripted()
    t = open_tether(db_path, guards, max_depth=4)
    day = utc_day()
    root = await t.run(spawn_into, {"children": 3, "calls": 2, "tenant": "globex"},
                       tenant="acme")
    today_or_skip(day)
    runs = tree_of(t, root.id)
    children = sorted((r for r in runs if r.depth == 1), key=lambda r: r.id)
    assert len(model.calls) == 3
    cap = limits[refused].steps
    scope = f"tenant {refused} {ABOVE}" if refused == "acme" else f"tenant {refused} (today)"
    assert children[1].reason == f"{scope} budget 'steps' exhausted: limit={cap} spent={cap}"
    # the refused effect is in no tenant's counters
    assert same_usage(t.store.get_usage("acme", day), usage_of(t, runs))
    assert same_usage(t.store.get_usage("globex", day), usage_of(t, children))
    # and not in the other tenant's day in this worker either: a run of that tenant alone
    # still has all the room the tree left it
    calls = len(model.calls)
    alone = await t.run(model_caller, {"calls": 10}, tenant=other)
    cap = limits[other].steps
    assert alone.reason == f"tenant {other} (today) budget 'steps' exhausted: limit={cap} " \
                           f"spent={cap}"
    assert len(model.calls) - calls == left
    t.close()
