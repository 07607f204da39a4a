"""Budgets replayed: re-executing a run purely from its journal (fresh guards) charges every
effect again in memory to the same figures and never a second time to the store's shared
counters — so a resumed run can neither be charged twice nor spend its budget again.
"""

from __future__ import annotations

from typing import Any

import pytest

from tether.guards import (
    spend_from_events,
)
from tether.guards._steps import SCRATCH_KEY

from .agents_hostile_budgets import (
    budget_spend,
    fan_out,
    fresh_guards,
    gather_gateway,
    journaled,
    open_tether,
    sequential,
    tree_of,
)
from .e2e_support import replay_only


@pytest.mark.parametrize("agent,spec,budget,status", [
    (sequential, 20, {"tool_calls": 5}, "halted"),
    (gather_gateway, 5, {"tool_calls": 5}, "succeeded"),
    (gather_gateway, 5, {"tool_calls": 5, "steps": 100, "cost_usd": 1.0}, "succeeded"),
    (fan_out, {"children": 3, "calls": 2}, {"tool_calls": 6, "steps": 50}, "succeeded"),
])
async def test_replay_rebuilds_the_same_ledger(db_path, agent, spec, budget, status):
    guards = fresh_guards()
    t = open_tether(db_path, guards, max_depth=4)
    run = await t.run(agent, spec, options={"budget": budget})
    assert run.status == status, (run.status, run.reason, run.error)
    want = spend_from_events(t.events(run.id))
    tree = tree_of(t, run.id)
    counters = dict(budget_spend(t, run.id))
    if len(tree) > 1:  # shared by several runs: reserved in the store, one count per effect
        assert counters["steps"] == journaled(t, tree, "steps")
        assert counters["tool_calls"] == journaled(t, tree, "tool_calls")
    # re-execute purely from the journal with fresh guards: every effect is replayed and the
    # interceptor's `after` charges it; nothing reaches the store's counters a second time
    fresh = fresh_guards()
    captured: dict[str, Any] = {}

    async def replayed(ctx: Any, spec: Any) -> Any:
        try:
            return await agent(ctx, spec)
        finally:
            captured["state"] = ctx.scratch[SCRATCH_KEY]

    if status == "halted":  # the halting call is not journaled: the replay halts there again
        with pytest.raises(BaseException, match=r"'tool_calls' exhausted: limit=5 spent=5"):
            await replay_only(t, fresh, run.id, replayed)
    else:
        assert await replay_only(t, fresh, run.id, replayed) == run.result
    own = captured["state"].budget.spent
    assert (own.steps, own.tool_calls, own.child_runs) == (want.steps, want.tool_calls,
                                                          want.child_runs)
    assert budget_spend(t, run.id) == counters
    t.close()
