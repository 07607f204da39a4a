"""Runtime bugs found by the chaos test (`test_chaos.py`), each reduced to a minimal test.

A crash is simulated by writing the journal a killed worker leaves behind (`run_started` and a
`step_started` with no outcome); an in-process worker then picks the run up, exactly like a
replacement worker after the dead one's lease expired.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from tether import Context, Tether
from tether.runtime import agent_ref, ops
from tether.store import NewEvent, RunRecord, dumps

STARTED: Counter[str] = Counter()
FINISHED: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    STARTED.clear()
    FINISHED.clear()


async def send(name: str, ms: float) -> str:
    """A non-idempotent activity (an e-mail, a payment without a key) that takes `ms`."""
    STARTED[name] += 1
    await asyncio.sleep(ms / 1000)
    FINISHED[name] += 1
    return f"sent {name}"


async def two_branches(ctx: Context, _: Any) -> list[Any]:
    return await ctx.gather(ctx.step("a", send, "a", 20), ctx.step("b", send, "b", 50))


def crashed_run(tether: Tether, *in_flight: str) -> str:
    """Queue a `two_branches` run whose journal is what a SIGKILLed worker leaves: the steps of
    the given branches (0 = "a", 1 = "b") were started and their outcome never recorded."""
    run_id = tether.submit(two_branches)
    now = time.time()
    events = [NewEvent(2, "run_started", None, None, dumps({"worker": "dead:1:x", "attempt": 1}),
                       now)]
    for i, branch in enumerate(in_flight):
        key = f"1:{'ab'.index(branch)}.1"
        events.append(NewEvent(3 + i, "step_started", key, branch, dumps({"attempt": 1}), now))
    tether.store.write(lambda tx: tx.append_events(run_id, events))
    return run_id


# Fixed in the gather change after f71248d. Was: gather cancels sibling branches when one branch
# raises InDoubt: the sibling's running step is interrupted (journaled as failed in d30a52f, left
# in doubt since 4836519), so one genuinely in-doubt step costs the run a second, spurious human
# decision (or the run)
async def test_in_doubt_branch_lets_its_siblings_finish(tether: Tether) -> None:
    run_id = crashed_run(tether, "a")
    rec = await tether.drive(run_id)
    assert rec.status == "waiting" and rec.options["in_doubt"]["key"] == "1:0.1"

    tether.resolve(run_id, "skip", result="sent a")  # the human saw that "a" was sent
    rec = await tether.drive(run_id)

    assert (rec.status, rec.options.get("in_doubt")) == ("succeeded", None), (
        f"one resolution should finish the run; it is {rec.status}: {rec.reason}")
    assert rec.result == ["sent a", "sent b"]
    assert STARTED["b"] == FINISHED["b"] == 1  # b was never interrupted nor repeated


# Fixed in the gather change after f71248d. Was: livelock: two in-doubt non-idempotent steps in
# sibling branches; every `resolve --retry` of one is undone by the other's InDoubt cancelling the
# retried step, forever
async def test_two_in_doubt_branches_finish_after_two_decisions(tether: Tether) -> None:
    run_id = crashed_run(tether, "a", "b")
    decisions: list[str] = []
    rec = await tether.drive(run_id)
    while rec.status == "waiting" and rec.options.get("in_doubt") and len(decisions) < 6:
        key = rec.options["in_doubt"]["key"]
        decisions.append(key)
        tether.resolve(run_id, "retry")  # the human saw that neither effect happened
        rec = await tether.drive(run_id)

    assert rec.status == "succeeded", (
        f"after decisions {decisions} the run is still {rec.status}: {rec.reason}")
    assert sorted(decisions) == ["1:0.1", "1:1.1"]
    assert dict(FINISHED) == {"a": 1, "b": 1}


async def quick_child(ctx: Context, _: Any) -> str:
    await ctx.sleep(0.3)
    return "child done"


async def spawn_then_send(ctx: Context, _: Any) -> list[Any]:
    handle = await ctx.spawn(quick_child)  # key 1
    sent = await ctx.step("a", send, "a", 0)  # key 2
    return [sent, await handle]


async def test_a_finishing_child_does_not_wake_a_run_waiting_for_a_human(tether: Tether) -> None:
    run_id = tether.submit(spawn_then_send)
    child = RunRecord(id=f"{run_id}.1", agent=agent_ref(quick_child), status="queued", input=None,
                      parent_id=run_id, root_id=run_id, depth=1)
    tether.store.write(ops.create_run(child))
    now = time.time()
    events = [
        NewEvent(2, "run_started", None, None, dumps({"worker": "dead:1:x", "attempt": 1}), now),
        NewEvent(3, "child_spawned", "1", child.agent, dumps({"child_id": child.id}), now),
        NewEvent(4, "step_started", "2", "a", dumps({"attempt": 1}), now),
    ]
    tether.store.write(lambda tx: tx.append_events(run_id, events))

    rec = await tether.drive(run_id)  # returns once the child is done and the parent waits
    assert tether.get(child.id).status == "succeeded"
    assert rec.status == "waiting" and rec.options["in_doubt"]["key"] == "2"

    journal = [e.kind for e in tether.events(run_id)]
    flagged = journal.index("step_in_doubt")
    assert "run_resumed" not in journal[flagged:], (
        f"the run was executed again while it waited for a human decision: {journal}")


def send_sync(name: str, ms: float) -> str:
    """The same effect as `send`, as a plain function: the runtime runs it in a thread."""
    STARTED[name] += 1
    time.sleep(ms / 1000)
    FINISHED[name] += 1
    return f"sent {name}"


async def fail_soon(ms: float) -> None:
    await asyncio.sleep(ms / 1000)
    raise ValueError("boom")


async def failing_branch_and_sync_sibling(ctx: Context, _: Any) -> list[Any]:
    return await ctx.gather(ctx.step("boom", fail_soon, 30), ctx.step("b", send_sync, "b", 150))


async def test_cancelled_sync_step_is_not_journaled_failed_while_its_thread_acts(
    tether: Tether,
) -> None:
    rec = await tether.run(failing_branch_and_sync_sibling, None)
    assert rec.status == "failed" and "boom" in (rec.error or "")
    await asyncio.sleep(0.3)  # let the thread finish, as it will in a live worker
    outcome = [e.kind for e in tether.events(rec.id) if e.name == "b"]
    assert STARTED["b"] == 1
    if FINISHED["b"]:  # the effect happened: the journal must not call the step failed
        assert "step_failed" not in outcome, (
            f"step b performed its effect after the journal recorded {outcome}")


async def hog_the_loop(seconds: float) -> str:
    """An async activity that blocks the event loop (a sync SDK call, a long GC pause): the
    worker's heartbeat cannot renew its leases meanwhile."""
    time.sleep(seconds)
    return "done"


async def block_then_send(ctx: Context, _: Any) -> str:
    await ctx.step("hog", hog_the_loop, 0.8)
    result: str = await ctx.step("after", send, "after", 100)
    return result


async def test_worker_does_not_reclaim_a_run_it_is_still_executing(db_path: str) -> None:
    tether = Tether(db_path, lease_ttl=0.3)
    try:
        run_id = tether.submit(block_then_send)
        worker = tether.worker(poll_interval=0.05)
        await asyncio.wait_for(worker.serve(until=lambda: tether._settled(run_id)), 20)
        rec = tether.get(run_id)
        journal = [(e.kind, e.name, (e.data or {}).get("worker") if e.kind.startswith("run_")
                    else None) for e in tether.events(run_id)]
        assert rec.status == "succeeded", f"{rec.status}: {rec.reason}; journal {journal}"
        assert STARTED["after"] == FINISHED["after"] == 1
    finally:
        tether.close()
