"""Budgets under concurrency, on the real runtime: what a hostile agent does to spend more than
it was given. Parallel calls (`ctx.gather`), concurrent children and grandchildren — in one
worker and in several `tether worker` processes — and a child trying to raise its own limit.

The issue's examples: 20 calls ran under `tool_calls=5` via `ctx.gather`; a parent limited to 5
calls had 29-40 calls executed by 8 concurrent children; `ctx.spawn(child, options={"budget":
{...}})` let a child raise its own limit above its parent's.

The agents, tools and guards are module-level so that worker processes can import them
(`tests.guards.test_hostile_budgets:NAME`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.guards import (
    ActionDenied,
    BudgetLimits,
    GuardConfig,
    Guards,
    loads_policy,
    spend_from_events,
)
from tether.guards._steps import SCRATCH_KEY
from tether.guards.budget import utc_day
from tether.models import ScriptedModel
from tether.models.messages import Message
from tether.tools import ToolRegistry, tool

from .e2e_support import replay_only, say
from .test_e2e_workers_governed import WorkerProcess, workers  # noqa: F401 (a fixture)

POLICY = """\
name: hostile-budgets
rules:
  - {id: spend, tools: spend, effect: allow}
"""

SPENT: list[str] = []  # every real execution of the `spend` tool in this process
_SPENT_LOCK = threading.Lock()
STATE: dict[str, Any] = {"guards": None, "model": None}


@tool(side_effect="read")
def spend(tag: str) -> str:
    """Costs one tool call; records that it really ran (here and in $TETHER_TEST_LEDGER)."""
    with _SPENT_LOCK:
        SPENT.append(tag)
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {tag}\n")
    time.sleep(float(os.environ.get("TETHER_TEST_SPEND_S", "0.005")))  # calls overlap
    return f"spent {tag}"


@tool(side_effect="destructive")
def wipe(tag: str) -> str:
    """Never allowed by the policy."""
    SPENT.append("WIPE " + tag)
    return "wiped"


TOOLS = ToolRegistry([spend, wipe])
# for `tether worker` processes (runs declare `guards=tests.guards.test_hostile_budgets:GUARDS`)
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "hostile-budgets.yaml")), tools=TOOLS)


def fresh_guards(**kw: Any) -> Guards:
    guards = Guards(GuardConfig(policy=loads_policy(POLICY, "hostile-budgets.yaml"), **kw),
                    tools=TOOLS)
    SPENT.clear()
    STATE.update(guards=guards, model=None)
    return guards


def _guards(ctx: Any) -> Guards:
    guards = ctx.guards or STATE["guards"]
    assert isinstance(guards, Guards)
    return guards


# ------------------------------------------------------------------------------ agents
async def gather_gateway(ctx: Any, n: int) -> list[bool]:
    """n model-proposed calls at once, through `Guards.tool`."""
    guards = _guards(ctx)
    results = await ctx.gather(*(guards.tool(ctx, "spend", {"tag": f"g{i}"}) for i in range(n)))
    return [r.ok for r in results]


async def gather_direct(ctx: Any, n: int) -> list[bool]:
    """n calls at once, made by agent code with `ctx.tool` (no gateway)."""
    results = await ctx.gather(*(ctx.tool(TOOLS, "spend", {"tag": f"d{i}"}) for i in range(n)))
    return [r.ok for r in results]


async def sequential(ctx: Any, n: int) -> int:
    """n model-proposed calls, one after the other."""
    guards = _guards(ctx)
    done = 0
    for i in range(n):
        done += (await guards.tool(ctx, "spend", {"tag": f"s{i}"})).ok
    return done


def _work(i: int) -> int:
    SPENT.append(f"step{i}")
    return i


async def gather_steps(ctx: Any, n: int) -> list[int]:
    """n plain steps at once."""
    return list(await ctx.gather(*(ctx.step("work", _work, i) for i in range(n))))


async def gather_models(ctx: Any, n: int) -> list[str]:
    """n model calls at once, through `Guards.model`."""
    guards = _guards(ctx)
    model = STATE["model"]
    responses = await ctx.gather(*(guards.model(ctx, model, [Message.user(f"q{i}")],
                                                validate=False) for i in range(n)))
    return [r.text for r in responses]


async def spender(ctx: Any, spec: dict[str, Any]) -> int:
    """A child: spawns its own children first (if asked), then spends, one call at a time or
    all at once."""
    guards = _guards(ctx)
    if spec.get("children"):
        await fan_out(ctx, {**spec, "children": spec["children"], "grand": 0,
                            "child_budget": spec.get("grand_budget")})
    tags = [f"{ctx.run_id}:{i}" for i in range(spec["calls"])]
    if spec.get("parallel"):
        results = await ctx.gather(*(guards.tool(ctx, "spend", {"tag": t}) for t in tags))
        return sum(r.ok for r in results)
    done = 0
    for tag in tags:
        done += (await guards.tool(ctx, "spend", {"tag": tag})).ok
    return done


async def fan_out(ctx: Any, spec: dict[str, Any]) -> list[Any]:
    """Spawns `children` spenders (all before joining any: they run concurrently), optionally
    with their own `child_budget`, each spawning `grand` grandchildren."""
    options = {"budget": spec["child_budget"]} if spec.get("child_budget") is not None else None
    child_spec = {"calls": spec["calls"], "children": spec.get("grand", 0),
                  "grand_budget": spec.get("grand_budget"), "parallel": spec.get("parallel")}
    handles = [await ctx.spawn(spender, child_spec, options=options)
               for _ in range(spec["children"])]
    return list(await ctx.gather(*(h.result() for h in handles)))


async def leaf(ctx: Any, i: int) -> int:
    return i


async def gather_spawns(ctx: Any, n: int) -> list[int]:
    """n children spawned at once (then joined)."""
    handles = await ctx.gather(*(ctx.spawn(leaf, i) for i in range(n)))
    return list(await ctx.gather(*(h.result() for h in handles)))


async def denied_then_allowed(ctx: Any, n: dict[str, int]) -> int:
    """Direct calls the policy refuses (each refusal is caught), then allowed ones."""
    for i in range(n["denied"]):
        with contextlib.suppress(ActionDenied):
            await ctx.tool(TOOLS, "wipe", {"tag": str(i)})
    done = 0
    for i in range(n["allowed"]):
        done += (await ctx.tool(TOOLS, "spend", {"tag": f"a{i}"})).ok
    return done


def _slow_idempotent(i: int, spec: dict[str, Any]) -> int:
    """Records its start; the step at `crash_at` hangs once (the test kills its worker)."""
    with open(spec["ledger"], "a", encoding="utf-8") as fh:
        fh.write(f"start {i}\n")
    marker = Path(spec["ledger"] + ".hung")
    if i == spec["crash_at"] and not marker.exists():
        marker.write_text("x")
        time.sleep(60)
    return i


async def idempotent_steps(ctx: Any, spec: dict[str, Any]) -> list[int]:
    """Plain idempotent steps: one in doubt after a crash is run again by the next worker."""
    return [await ctx.step("slow", _slow_idempotent, i, spec, idempotent=True)
            for i in range(spec["n"])]


async def parent_of_idempotent(ctx: Any, spec: dict[str, Any]) -> Any:
    return await (await ctx.spawn(idempotent_steps, spec))


async def bad_child_budget(ctx: Any, budget: Any) -> str:
    try:
        await ctx.spawn(spender, {"calls": 1}, options={"budget": budget})
    except ValueError as exc:
        return str(exc)
    return "spawned"


# ----------------------------------------------------------------------------- helpers
def open_tether(db_path: str, guards: Guards, **kw: Any) -> Tether:
    return Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0, **kw)


def tree_of(t: Tether, root_id: str) -> list[Any]:
    return [r for r in t.runs(limit=10_000) if (r.root_id or r.id) == root_id]


def journaled(t: Tether, runs: list[Any], metric: str) -> float:
    return sum(getattr(spend_from_events(t.events(r.id)), metric) for r in runs)


def budget_spend(t: Tether, scope: str) -> dict[str, float]:
    return t.store.get_budget_spend(scope)  # type: ignore[attr-defined,no-any-return]


# ------------------------------------------------------------------- one run, in parallel
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


# ------------------------------------------------------------------- trees, in one worker
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


# --------------------------------------------------------------- trees, in worker processes
ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.guards.test_hostile_budgets"


def worker_process(env: dict[str, str], concurrency: int, lease_ttl: float = 30.0
                   ) -> WorkerProcess:
    return WorkerProcess(env, "--concurrency", str(concurrency), "--lease-ttl", str(lease_ttl))


@pytest.mark.slow
@pytest.mark.parametrize("children,limit", [(8, 5), (6, 2)])
async def test_children_in_several_worker_processes_share_the_parents_budget(
        tmp_path: Path, workers: list[WorkerProcess],  # noqa: F811 (the imported fixture)
        children: int, limit: int) -> None:
    db = str(tmp_path / "t.db")
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "TETHER_DB": db, "TETHER_TEST_LEDGER": str(ledger),
           "TETHER_TEST_SPEND_S": "0.2", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    t = Tether(db)
    for _ in range(4):  # 4 processes x 2 runs: the children are spread over the processes
        workers.append(worker_process(env, concurrency=2))
    for w in workers:  # every process serves before there is work to share
        assert w.proc.stdout is not None and "serving" in w.proc.stdout.readline()
    root_id = t.submit(f"{MODULE}:fan_out", {"children": children, "calls": 10},
                       options={"budget": {"tool_calls": limit}}, guards=f"{MODULE}:GUARDS")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not t.get(root_id).finished:
        await asyncio.sleep(0.2)
    outputs = [w.stop() for w in workers]
    assert t.get(root_id).finished, outputs
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    runs = tree_of(t, root_id)
    assert len(runs) == children + 1
    assert len(lines) <= limit, lines
    assert journaled(t, runs, "tool_calls") <= limit
    assert budget_spend(t, root_id)["tool_calls"] == journaled(t, runs, "tool_calls")
    # more than one process executed the children (so the bound held across processes)
    started_by = {e.data.get("worker") for r in runs if r.depth == 1 for e in t.events(r.id)
                  if e.kind in ("run_started", "run_resumed") and isinstance(e.data, dict)}
    assert len(started_by) >= 2, started_by
    t.close()


@pytest.mark.slow
@pytest.mark.parametrize("agent,budget,scope", [
    ("idempotent_steps", {"steps": 4}, "root"),            # a root alone: reserved in memory
    ("parent_of_idempotent", {"steps": 5}, "child"),       # a child: reserved in the store
])
async def test_an_effect_run_again_after_a_crash_is_counted_once(
        tmp_path: Path, workers: list[WorkerProcess],  # noqa: F811 (the imported fixture)
        agent: str, budget: dict[str, int], scope: str) -> None:
    """The last step a budget allows is in doubt when its worker is killed; the next worker
    runs it again (it is idempotent). Its reservation was made once: the run finishes within
    the budget, and the counters hold each step once."""
    db = str(tmp_path / "t.db")
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "TETHER_DB": db, "PYTHONPATH": str(ROOT)}
    spec = {"n": 4, "crash_at": 3, "ledger": str(ledger)}
    t = Tether(db)
    root_id = t.submit(f"{MODULE}:{agent}", spec, options={"budget": budget},
                       guards=f"{MODULE}:GUARDS")
    first = worker_process(env, concurrency=4, lease_ttl=1.0)
    workers.append(first)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "start 3" not in (
            ledger.read_text() if ledger.exists() else ""):
        await asyncio.sleep(0.05)
    first.proc.kill()  # mid-step: the step is journaled as started, its outcome is not
    first.proc.wait()
    workers.append(worker_process(env, concurrency=4, lease_ttl=1.0))
    while time.monotonic() < deadline + 60 and not t.get(root_id).finished:
        await asyncio.sleep(0.1)
    root = t.get(root_id)
    runs = tree_of(t, root_id)
    assert root.status == "succeeded", (root.status, root.reason, root.error)
    assert ledger.read_text().splitlines() == ["start 0", "start 1", "start 2", "start 3",
                                               "start 3"]
    runner = next(r for r in runs if r.depth == (0 if scope == "root" else 1))
    assert runner.result == [0, 1, 2, 3]
    steps = journaled(t, runs, "steps")
    assert steps == budget["steps"]
    if scope == "child":  # the counters in the store hold the re-run step once
        assert budget_spend(t, root_id)["steps"] == steps
