"""The group committer's two paths: a lone run commits inline (one transaction per step, no
thread hand-off); several runs, or writers that never attach, share the thread's transactions.
Ordering holds across both paths, and an inline write never blocks its event loop on another
process's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Tether, Worker
from tether.runtime import GroupCommitter
from tether.store import TERMINAL_STATUSES, NewEvent, RunRecord, SQLiteStore, Tx

from . import agents_core as A


def _serve_until_done(worker: Worker, tether: Tether, run_ids: list[str]) -> Any:
    def done() -> bool:
        return all(tether.get(r).status in TERMINAL_STATUSES | {"waiting"} for r in run_ids)

    return worker.serve(until=done)


async def test_a_lone_run_commits_once_per_step_inline(tether: Tether) -> None:
    A.reset()
    committer = GroupCommitter(tether.store)
    # a long poll: the worker's claim loop wakes on the run's end (kick), so no claims are
    # polled while the run executes and the count below is the run's own
    worker = Worker(tether.store, committer=committer, poll_interval=5.0)
    run_id = tether.submit(A.sequential, 60)
    try:
        await _serve_until_done(worker, tether, [run_id])
    finally:
        committer.close()
    run = tether.get(run_id)
    assert run.status == "succeeded" and run.result == sum(range(60))
    kinds = [e.kind for e in tether.events(run_id)]
    assert kinds.count("step_started") == kinds.count("step_completed") == 60
    assert kinds[-2:] == ["step_completed", "run_completed"]  # the last completion is not lost
    # step N's completion rides with step N+1's start: one transaction per step, written by
    # the run's own thread (claims, the finish and a lease renewal on a slow machine add a
    # few; without coalescing it would be ~120)
    assert committer.inline >= 58
    assert committer.inline + committer.batches <= 60 + 10


async def test_inline_commits_can_be_turned_off(tether: Tether) -> None:
    # a worker sharing its loop with an HTTP server keeps every fsync off that loop
    A.reset()
    worker = Worker(tether.store, poll_interval=5.0, inline_commits=False)
    committer = worker.committer  # the worker's own: it closes it when serve() returns
    run_id = tether.submit(A.sequential, 30)
    await _serve_until_done(worker, tether, [run_id])
    assert tether.get(run_id).status == "succeeded"
    assert committer.inline == 0
    assert 30 <= committer.batches <= 30 + 10  # still one transaction per step


async def test_many_runs_share_the_threads_transactions(tether: Tether) -> None:
    committer = GroupCommitter(tether.store)
    worker = Worker(tether.store, committer=committer, poll_interval=0.01)
    run_ids = [tether.submit(A.sequential, 20) for _ in range(20)]
    try:
        await _serve_until_done(worker, tether, run_ids)
    finally:
        committer.close()
    assert all(tether.get(r).status == "succeeded" for r in run_ids)
    # 400 steps; the first run may commit a few inline before the others attach
    assert committer.inline <= 20
    assert committer.inline + committer.batches < 200, (committer.inline, committer.batches)


def _append(run_id: str, seq: int, order: list[int], gate: threading.Event | None = None
            ) -> Any:
    def op(tx: Tx) -> None:
        if gate is not None:
            assert gate.wait(10)
        tx.append_events(run_id, [NewEvent(seq, "log", str(seq), None, None, time.time())])
        order.append(seq)

    return op


def _store_with_run(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.write(lambda tx: tx.insert_run(RunRecord(id="r1", agent="m:f", status="queued",
                                                   input=None, root_id="r1")))
    return store


async def test_an_inline_write_waits_behind_one_being_written(tmp_path: Path) -> None:
    store = _store_with_run(tmp_path / "o.db")
    committer = GroupCommitter(store)
    committer.attach()  # a lone run: inline commits are allowed
    order: list[int] = []
    gate = threading.Event()
    try:
        first = committer.submit(_append("r1", 1, order, gate))
        await asyncio.sleep(0.05)  # the thread is now inside the first transaction
        second = committer.submit(_append("r1", 2, order), inline=True)
        assert not second.done()  # not written past the first: queued behind it
        gate.set()
        await asyncio.gather(first, second)
        assert order == [1, 2]
        assert committer.inline == 0
        third = committer.submit(_append("r1", 3, order), inline=True)
        assert third.done() and committer.inline == 1  # nothing ahead of it now: inline
    finally:
        committer.close()
    assert [e.seq for e in store.load_events("r1")] == [1, 2, 3]


async def test_an_inline_write_never_blocks_on_another_process(tmp_path: Path) -> None:
    store = _store_with_run(tmp_path / "p.db")
    committer = GroupCommitter(store)
    committer.attach()
    other = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    order: list[int] = []
    try:
        t0 = time.perf_counter()
        fut = committer.submit(_append("r1", 1, order), inline=True)
        assert time.perf_counter() - t0 < 1.0  # the busy timeout is 30 s: it did not wait
        assert not fut.done()
        other.execute("COMMIT")
        await asyncio.wait_for(fut, 10)
        assert order == [1] and committer.inline == 0 and committer.batches == 1
    finally:
        other.close()
        committer.close()


async def test_events_appended_before_a_suspension_are_journaled(tether: Tether) -> None:
    A.reset()
    run = await tether.run(A.waits_then_steps, {})
    assert run.status == "waiting"
    kinds = [(e.kind, e.name) for e in tether.events(run.id)]
    # "before"'s completion and the wait were appended without a commit of their own
    assert ("step_completed", "before") in kinds and ("signal_waiting", "go") in kinds


async def test_a_lone_run_committing_inline_still_lets_its_loop_run(tether: Tether) -> None:
    # inline commits return done futures, and awaiting those never yields: without the
    # periodic yield the heartbeat, cancellations and a ticker like this one would starve
    A.reset()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    committer = GroupCommitter(tether.store)
    worker = Worker(tether.store, committer=committer, poll_interval=0.01)
    run_id = tether.submit(A.sequential, 300)
    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        before = ticks
        t0 = time.perf_counter()
        await _serve_until_done(worker, tether, [run_id])
        elapsed = time.perf_counter() - t0
    finally:
        task.cancel()
        committer.close()
    assert tether.get(run_id).status == "succeeded" and committer.inline >= 290
    # at least one turn of the loop per 5 ms of inline work (YIELD_EVERY), with slack
    assert ticks - before >= elapsed / 0.005 / 2, (ticks - before, elapsed)


async def test_a_store_that_raises_fails_the_writers_instead_of_hanging_them(
        tmp_path: Path) -> None:
    store = _store_with_run(tmp_path / "x.db")

    def broken(ops: Any, *, wait: bool = True) -> Any:
        raise OSError("disk went away")

    store.write_batch = broken  # type: ignore[method-assign]
    committer = GroupCommitter(store)
    try:
        first = committer.submit(lambda tx: None)
        with pytest.raises(OSError, match="disk went away"):
            await asyncio.wait_for(first, 10)
        # the thread survived: the next write is answered too
        with pytest.raises(OSError):
            await asyncio.wait_for(committer.submit(lambda tx: None), 10)
    finally:
        committer.close()
