"""Tenant-day budgets on the store's usage counters: exact across concurrent runs of one worker,
aware of other workers' usage, and never counting a replayed effect twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.guards import BudgetLimits
from tether.guards.budget import utc_day
from tether.guards.gateway import spend_from_events
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import make_guards, open_tether, say, search_forever


def _span(t: Any, run_id: str) -> tuple[float, float]:
    ts = [e.ts for e in t.events(run_id) if e.kind == "step_started"]
    return min(ts), max(ts)


async def test_concurrent_runs_of_two_tenants_do_not_overshoot_their_day(db_path):
    """Four runs per tenant execute at once in one worker (8 runs interleaved on one event loop;
    each step's function runs in a thread). Every run would take 40 steps; the day allows 30
    (acme) and 45 (globex).

    Bound asserted: total <= limit + K - 1, K = runs of the tenant in flight. A run checks the
    tenant's ledger before an effect and charges it after, and the ledger is shared by the
    worker's runs, so a check that passes sees every completed effect of every run; only the
    effects the other K - 1 runs have started but not finished are unseen — at most one each,
    as a run performs one effect at a time. (Recomputing from journals when a run starts, as
    before, let each of the K runs spend the whole day: up to 4 x 30 here.)"""
    limits = {"acme": BudgetLimits(steps=30), "globex": BudgetLimits(steps=45)}
    guards = make_guards(None, tenant_limits=limits)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, concurrency=16)
    k = 4
    ids: dict[str, list[str]] = {"acme": [], "globex": []}
    for _ in range(k):
        for tenant in ids:
            ids[tenant].append(t.submit(A.stepper, 40, tenant=tenant))
    every = ids["acme"] + ids["globex"]

    def settled() -> bool:
        return all(t.get(r).finished for r in every)

    day = utc_day()
    await asyncio.wait_for(t.worker().serve(until=settled), timeout=120)
    if utc_day() != day:
        pytest.skip("the runs straddled midnight UTC: their usage is split over two days")
    for tenant, limit in (("acme", 30), ("globex", 45)):
        runs = [t.get(r) for r in ids[tenant]]
        assert all(r.status == "halted" for r in runs), [(r.status, r.error) for r in runs]
        assert all(f"tenant {tenant} (today) budget 'steps' exhausted: limit={limit}"
                   in (r.reason or "") for r in runs)
        journaled = sum(spend_from_events(t.events(r)).steps for r in ids[tenant])
        assert limit <= journaled <= limit + k - 1
        # the counters hold exactly what was journaled: one increment per live effect
        assert t.store.get_usage(tenant, day) == {"steps": float(journaled)}
        # the runs really ran concurrently: their executions overlap
        spans = [_span(t, r) for r in ids[tenant]]
        assert max(s[0] for s in spans) < min(s[1] for s in spans)
        assert sum(1 for r in ids[tenant] if spend_from_events(t.events(r)).steps > 0) >= 2
    t.close()


async def test_usage_of_other_workers_is_seen_when_a_run_starts(db_path):
    guards = make_guards(None, tenant_limits={"acme": BudgetLimits(steps=12, tool_calls=100)})
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    # another worker (another process) already spent 10 steps of acme's day
    t.store.write(lambda tx: tx.add_usage("acme", utc_day(), {"steps": 10, "tool_calls": 3}))
    run = await t.run(A.stepper, 5, tenant="acme")
    assert run.status == "halted"
    assert run.reason == "tenant acme (today) budget 'steps' exhausted: limit=12 spent=12"
    assert spend_from_events(t.events(run.id)).steps == 2
    t.close()


async def test_replays_do_not_count_twice(db_path):
    """A parent that spawns and joins children one after another is replayed after every join;
    the usage counters still hold each effect once."""
    guards = make_guards(None, tenant_limits={"acme": BudgetLimits(steps=1000)})
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.spawner, 4, tenant="acme")
    assert run.status == "succeeded" and run.result == [0, 1, 2, 3]
    journaled = sum(spend_from_events(t.events(r.id)).steps for r in t.runs(limit=100))
    assert journaled == 4  # the four spawns (the leaves perform no effect)
    usage = t.store.get_usage("acme", utc_day())
    assert usage == {"steps": 4.0, "child_runs": 4.0}
    t.close()


async def test_refused_proposals_and_model_tokens_are_metered(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("exec_shell", {"cmd": "rm -rf /"}),
                               tool_call("shutdown", {}), tool_call("search", {"q": "x"}),
                               usage=(100, 7), cost=0.01), "done"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"}, tenant="acme")
    assert run.status == "succeeded"
    usage = t.store.get_usage("acme", utc_day())
    # 2 model calls + 3 tool steps (a denial, a honeypot, a real call); tokens of both calls
    assert usage["steps"] == 5 and usage["tool_calls"] == 3
    assert usage["tokens_in"] >= 100 and usage["tokens_out"] >= 7
    assert usage["cost_usd"] == 0.01
    t.close()


def test_the_remembered_day_is_the_day_of_every_timestamp():
    """`utc_day_at` keeps the day of the last timestamp: whatever order timestamps come in,
    around midnight (where the exact conversion rounds to the microsecond) included, it gives
    the day `datetime.fromtimestamp` gives."""
    import random
    from datetime import UTC, datetime

    from tether.guards.budget import utc_day_at

    midnight = 1_796_601_600.0  # 2026-12-07 00:00:00 UTC
    near = [midnight + d for d in (-1.0, -0.002, -0.001, -0.0005, -0.0000006, -0.0000004,
                                   0.0, 0.0000004, 0.0005, 0.001, 0.002, 1.0)]
    rng = random.Random(16)
    spread = [rng.uniform(0, 4_000_000_000) for _ in range(500)] + [0.0, 86399.9999999]
    stamps = near + spread + near[::-1]
    rng.shuffle(spread)
    around = [s for t in near for s in (midnight - 43200.0, t, midnight + 43200.0, t)]
    for ts in stamps + spread + around:
        assert utc_day_at(ts) == utc_day(datetime.fromtimestamp(ts, UTC)), ts
