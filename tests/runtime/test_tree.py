"""Children: depth limit, structured cancellation, parents closing over live children."""

from __future__ import annotations

import asyncio

import pytest

from tether import RunNotFound, Tether

from . import agents_core as A


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


async def test_recursive_spawning_stops_at_the_depth_limit(tether: Tether) -> None:
    rec = await tether.run(A.recursive, 0, max_depth=3)
    assert rec.status == "failed"
    runs = tether.store.list_runs(limit=100)
    assert max(r.depth for r in runs) == 3
    deepest = next(r for r in runs if r.depth == 3)
    assert deepest.status == "failed"
    assert "at depth 3 may not spawn a child: the maximum depth is 3" in (deepest.error or "")
    assert all(r.status == "failed" for r in runs)  # the failure propagated up the tree


async def test_cancel_propagates_to_the_whole_tree(tether: Tether) -> None:
    rec = await tether.run(A.tree_parent, None)
    assert rec.status == "waiting"
    kids = tether.store.list_runs(parent_id=rec.id)
    assert len(kids) == 3 and all(k.status == "waiting" for k in kids)
    touched = tether.cancel(rec.id)
    assert set(touched) == {rec.id, *(k.id for k in kids)}
    assert all(tether.get(i).status == "cancelled" for i in touched)
    assert tether.events(rec.id)[-1].kind == "run_cancelled"


async def test_cancel_stops_a_running_run_and_its_children(tether: Tether) -> None:
    run_id = tether.submit(A.long_step, 30.0)
    worker = tether.worker(lease_ttl=3.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.serve(stop=stop))
    while A.CALLS["slow"] == 0:
        await asyncio.sleep(0.01)
    tether.cancel(run_id)
    for _ in range(300):
        if tether.get(run_id).status == "cancelled":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    rec = tether.get(run_id)
    assert rec.status == "cancelled"
    failed = [e for e in tether.events(run_id) if e.kind == "step_failed"]
    assert failed and failed[0].data["type"] == "Cancelled"


async def test_a_finished_parent_cancels_children_it_did_not_join(tether: Tether) -> None:
    from tether import Context

    rec = await tether.run("tests.runtime.test_tree:fire_and_forget", None)
    assert rec.status == "succeeded"
    kids = tether.store.list_runs(parent_id=rec.id)
    assert [k.status for k in kids] == ["cancelled"]
    assert "parent run" in (kids[0].reason or "")
    assert Context  # imported for the agent below


async def fire_and_forget(ctx, inp):  # type: ignore[no-untyped-def]
    await ctx.spawn(A.tree_child, 0)
    return "left a child behind"


def test_unknown_run_ids_are_specific_errors(tether: Tether) -> None:
    for call in (lambda: tether.get("r-nope"), lambda: tether.signal("r-nope", "x"),
                 lambda: tether.cancel("r-nope"), lambda: tether.resolve("r-nope", "retry"),
                 lambda: tether.events("r-nope")):
        with pytest.raises(RunNotFound, match="no run with id 'r-nope'"):
            call()
