"""`Worker.health()`: what a worker says of itself to a supervisor's probes (tests/server and
tests/cli take it over HTTP). Each case is the state a probe must tell apart: not serving,
serving well, an event loop blocked by a step, a store that refuses the worker's claims."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from tether import Context, Tether
from tether.store import SQLiteStore


async def blocks_the_loop(ctx: Context, seconds: float) -> str:
    time.sleep(seconds)  # the mistake: a blocking call in async code, not in a step's thread
    return "woke"


async def test_a_worker_not_serving_says_so(tmp_path: object) -> None:
    t = Tether(f"{tmp_path}/t.db")
    try:
        health = t.worker().health()
        assert not health.serving and health.loop_silent_s is None
        assert health.problems() == [f"worker {health.owner} is not serving (not started, or "
                                     "stopped)"]
    finally:
        t.close()


async def test_a_serving_worker_is_live_and_ready_and_says_so_after_it_stops(
        tmp_path: object) -> None:
    t = Tether(f"{tmp_path}/t.db")
    worker = t.worker(poll_interval=0.05)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        await asyncio.sleep(1.2)  # a few pulses
        health = worker.health()
        assert health.serving and health.loop_silent_s is not None
        assert health.loop_silent_s < 1.0
        assert health.problems() == [] and health.problems(ready=True) == []
        assert (health.claim_failures, health.executing, health.concurrency) == (0, 0, 256)
    finally:
        stop.set()
        await serving
    assert not worker.health().serving
    t.close()


async def test_a_step_that_blocks_the_event_loop_shows_as_a_stall_from_another_thread(
        tmp_path: object) -> None:
    t = Tether(f"{tmp_path}/t.db")
    worker = t.worker(poll_interval=0.05)
    seen: list[float] = []
    problems: list[str] = []
    done = threading.Event()

    def probe() -> None:  # what a probe server's thread sees while the loop is blocked
        while not done.is_set():
            health = worker.health()
            if health.loop_silent_s is not None:
                seen.append(health.loop_silent_s)
                problems.extend(health.problems(stall_after=1.0))
            time.sleep(0.05)

    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    prober = threading.Thread(target=probe)
    prober.start()
    try:
        run_id = t.submit(blocks_the_loop, 2.0)
        worker.kick()
        deadline = time.monotonic() + 30
        while not t.get(run_id).finished:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the loop runs again: the pulse comes back
        recovered = worker.health()
    finally:
        done.set()
        prober.join()
        stop.set()
        await serving
        t.close()
    assert max(seen) > 1.5, seen
    assert any("event loop has not run for" in p and "blocking function" in p
               for p in problems), problems
    assert recovered.problems(stall_after=1.0) == []


async def test_claims_the_store_refuses_make_the_worker_not_ready_but_still_live(
        tmp_path: object) -> None:
    path = f"{tmp_path}/t.db"
    t = Tether(SQLiteStore(path, busy_timeout=0.1))
    worker = t.worker(poll_interval=0.05)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        await asyncio.sleep(0.2)
        lock.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        await asyncio.sleep(1.0)
        health = worker.health()
        assert health.claim_failures >= 1 and (health.claims_failing_s or 0) > 0.3
        assert health.problems() == []  # live: restarting it would not help
        [problem] = health.problems(ready=True)
        assert "cannot claim runs: the store refused" in problem
        lock.execute("ROLLBACK")
        deadline = time.monotonic() + 20
        while worker.health().claim_failures:
            assert time.monotonic() < deadline, "claims never worked again"
            await asyncio.sleep(0.05)
        assert worker.health().problems(ready=True) == []
    finally:
        lock.close()
        stop.set()
        worker.kick()
        await serving
        t.close()
