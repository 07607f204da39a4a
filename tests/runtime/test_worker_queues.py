"""Worker queues on both store backends: a worker told to serve some tenants or agents executes
only those runs, children follow their root's agent and keep their tenant, and a worker woken for
runs it does not serve looks once and goes back to sleep (it does not spin)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tether import Tether
from tether.runtime import Context, Worker
from tether.runtime.queues import WorkerQueue

HERE = "tests.runtime.test_worker_queues"
FAN_OUT, DOUBLE, SEQUENTIAL = f"{HERE}:fan_out", f"{HERE}:double", f"{HERE}:sequential"


async def fan_out(ctx: Context, n: int) -> int:
    """A root whose children run another agent."""
    children = [await ctx.spawn(double, i) for i in range(n)]
    return sum(await ctx.gather(*(c.result() for c in children)))


async def double(ctx: Context, i: int) -> int:
    return int(await ctx.step("double", lambda: i * 2))


async def sequential(ctx: Context, n: int) -> int:
    return sum([await ctx.step(f"s{i}", lambda i=i: i) for i in range(n)])


def executed_by(t: Tether, run_id: str) -> set[str]:
    return {e.data["worker"] for e in t.events(run_id) if e.kind in ("run_started",
                                                                     "run_resumed")}


async def serve_until(workers: list[Worker], done: Callable[[], bool],
                      deadline_s: float = 60.0) -> None:
    stop = asyncio.Event()
    serving = [asyncio.create_task(w.serve(stop=stop)) for w in workers]
    started = time.monotonic()
    try:
        while not done():
            assert time.monotonic() - started < deadline_s, "the runs did not finish in time"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*serving)


async def test_a_worker_serving_one_tenant_never_claims_another_tenants_runs(
        db_path: str) -> None:
    t = Tether(db_path)
    try:
        acme = [t.submit(SEQUENTIAL, 3, tenant="acme") for _ in range(4)]
        globex = [t.submit(SEQUENTIAL, 3, tenant="globex") for _ in range(4)]
        worker = t.worker(tenants=["acme"], poll_interval=0.05)
        await serve_until([worker], lambda: all(t.get(r).finished for r in acme))
        assert [t.get(r).status for r in acme] == ["succeeded"] * 4
        assert [t.get(r).status for r in globex] == ["queued"] * 4  # untouched
        assert all(executed_by(t, r) == set() for r in globex)
        other = t.worker(tenants="globex", poll_interval=0.05)
        await serve_until([other], lambda: all(t.get(r).finished for r in globex))
        assert all(executed_by(t, r) == {other.owner} for r in globex)
    finally:
        t.close()


async def test_children_follow_their_roots_queue(db_path: str) -> None:
    """Pools for fan_out (acme), for double (any tenant) and for globex serve side by side:
    acme's fan_out tree, children included, runs on the fan_out pool only; the pool kept for
    the children's own agent and the other tenant's pool execute none of it."""
    t = Tether(db_path)
    try:
        root = t.submit(FAN_OUT, 3, tenant="acme")
        alone = t.submit(DOUBLE, 5, tenant="globex")
        tree_pool = t.worker(tenants="acme", agents=[fan_out], poll_interval=0.05)
        double_pool = t.worker(agents=DOUBLE, poll_interval=0.05)
        globex_pool = t.worker(tenants=["globex"], poll_interval=0.05)
        await serve_until([tree_pool, double_pool, globex_pool],
                          lambda: t.get(root).finished and t.get(alone).finished)
        assert t.get(root).result == 0 + 2 + 4
        children = t.store.list_runs(parent_id=root)
        assert len(children) == 3 and {c.agent for c in children} == {DOUBLE}
        assert {c.tenant for c in children} == {"acme"}
        for run in [t.get(root), *children]:
            assert executed_by(t, run.id) == {tree_pool.owner}, run.id
        # a double root is both pools' (serves agent double; serves tenant globex)
        assert executed_by(t, alone) <= {double_pool.owner, globex_pool.owner}
        assert t.get(alone).result == 10
    finally:
        t.close()


async def test_a_worker_woken_for_runs_it_does_not_serve_does_not_spin(db_path: str) -> None:
    """Every submit wakes the worker (its own client's kick; on PostgreSQL also LISTEN/NOTIFY
    from another client): it looks once per wake-up, claims nothing, and sleeps until the next
    (the poll here is 30 s, so a loop that kept claiming would show as hundreds of claims)."""
    submitter, serving_side = Tether(db_path), Tether(db_path)
    worker = serving_side.worker(tenants=["acme"], poll_interval=30.0)
    claims = 0
    run = worker.committer.run

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        if getattr(fn, "func", None) is not None and fn.func.__name__ == "claim_runs":
            claims += 1
        return await run(fn, *args, **kwargs)

    worker.committer.run = counting  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        deadline = time.monotonic() + 30
        while claims < 1:  # its first look, at start
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        theirs = [submitter.submit(SEQUENTIAL, 1, tenant="globex") for _ in range(5)]
        for _ in range(5):  # in the serving process: its client kicks its worker
            theirs.append(serving_side.submit(SEQUENTIAL, 1, tenant="globex"))
        await asyncio.sleep(1.0)  # wake-ups delivered (NOTIFY: within ms)
        settled = claims
        await asyncio.sleep(1.0)
        assert claims == settled, f"the worker kept claiming: {settled} then {claims}"
        assert 1 < settled <= 1 + len(theirs), settled
        assert all(submitter.get(r).status == "queued" for r in theirs)
        mine = serving_side.submit(SEQUENTIAL, 1, tenant="acme")  # kicks it on SQLite too
        while submitter.get(mine).status != "succeeded":  # and it still serves its own
            assert time.monotonic() < deadline, "the worker's own run was not started"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await serving
        submitter.close()
        serving_side.close()


def test_a_queue_normalises_agents_as_runs_record_them() -> None:
    queue = WorkerQueue.of(tenants="acme", agents=[fan_out, "agents/triage.py:main", DOUBLE])
    assert queue.tenants == frozenset({"acme"})
    assert queue.agents == frozenset({
        FAN_OUT, DOUBLE, os.path.abspath("agents/triage.py") + ":main"})
    assert WorkerQueue.of().everything and WorkerQueue.of().describe() == "every run"
    assert queue.describe() == ("tenant acme; runs started by agent "
                                + ", ".join(sorted(queue.agents)))


def test_the_queue_class_is_public_where_workers_are(db_path: str) -> None:
    import tether
    import tether.runtime

    assert tether.WorkerQueue is tether.runtime.WorkerQueue is WorkerQueue
    assert "WorkerQueue" in tether.__all__ and "WorkerQueue" in tether.runtime.__all__
    t = Tether(db_path)
    try:  # what a worker's `queue` attribute holds, so users can read it with the public type
        assert t.worker(tenants=["acme"]).queue == tether.WorkerQueue.of(tenants="acme")
    finally:
        t.close()


@pytest.mark.parametrize(("queue", "message"), [
    ({"tenants": []}, r"tenants=\[\] serves no run at all; list the tenants"),
    ({"agents": ()}, r"agents=\[\] serves no run at all"),
    ({"tenants": ["acme", ""]}, r"tenant '' in the worker's queue: a tenant is 1-64 letters"),
    ({"tenants": [" acme"]}, r"tenant ' acme' in the worker's queue"),
    ({"agents": "triage"}, r"agent 'triage' in the worker's queue: expected MODULE:FUNCTION"),
    ({"agents": [":main"]}, r"agent ':main' in the worker's queue"),
])
def test_a_queue_refuses_what_would_serve_nothing(db_path: str, queue: dict[str, Any],
                                                   message: str) -> None:
    t = Tether(db_path)
    try:
        with pytest.raises(ValueError, match=message):
            t.worker(**queue)
    finally:
        t.close()
