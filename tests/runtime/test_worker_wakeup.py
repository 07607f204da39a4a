"""A worker's wake-ups: a run submitted while the worker is claiming starts at once.

Before: `Worker.serve` cleared its wake-up event after the claim, which awaits the committer;
a kick arriving during that await (a run submitted meanwhile) was erased, and the run waited for
the next poll (found by the MCP server's latency benchmark: 11-16 ms per call instead of 3 ms
with the default 0.2 s poll; here the poll is 30 s so a lost kick cannot go unnoticed).

On PostgreSQL a worker hears NOTIFY and sleeps until the next due timer or foreign lease expiry
(`Tx.next_wake`) instead of polling: a durable timer fires, and a dead worker's run is taken
over, well before a 30 s poll (before, both waited for it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Context, Tether
from tether.runtime import _claiming as claiming_module

AGENT = "tests.runtime.agents_core:sequential"
TIMER = "tests.runtime.agents_core:long_timer"
GATED_TIMER = "tests.runtime.test_worker_wakeup:timer_after_gate"
# longer than the timers slept inline (INLINE_SLEEP_SECONDS): the run suspends on it
TIMER_S = 3.0
# a deadline far below the worker's 30 s poll, generous for a loaded CI machine
WELL_BEFORE_THE_POLL = 15.0


async def gate_opens(path: str) -> str:
    """A step that lasts until the test creates `path` (the test decides when it ends)."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened the gate {path}")
        await asyncio.sleep(0.05)
    return "open"


async def timer_after_gate(ctx: Context, inp: dict[str, Any]) -> str:
    await ctx.step("gate", gate_opens, inp["gate"])
    await ctx.sleep(inp["seconds"])
    return "woke"


def _postgres_only(db_path: str) -> None:
    if not db_path.startswith("postgres"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")


async def _wait_for(condition: Any, *, within: float, why: str) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, why
        await asyncio.sleep(0.05)


async def test_a_run_submitted_during_the_claim_is_not_left_for_the_next_poll(
        db_path: str) -> None:
    t = Tether(db_path)
    worker = t.worker(poll_interval=30.0)
    claims = 0
    late: list[str] = []
    run = worker.committer.run

    async def claim_then_submit(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        result = await run(fn, *args, **kwargs)
        if getattr(fn, "func", None) is not None and fn.func.__name__ == "claim_runs":
            claims += 1
            if claims == 1:  # arrives while the first claim is in flight: kicks the worker
                late.append(t.submit(AGENT, 2))
        return result

    worker.committer.run = claim_then_submit  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    started = time.monotonic()
    try:
        while not late or t.get(late[0]).status != "succeeded":
            assert time.monotonic() - started < 10, (
                "the run submitted during the claim waited for the next poll (30 s)")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await serving
        t.close()
    assert claims >= 2


async def test_a_run_submitted_by_another_process_wakes_a_postgres_worker(
        db_path: str) -> None:
    """PostgreSQL tells every worker (LISTEN/NOTIFY) when another client, process or host makes
    a run runnable; before, a worker found it at its next poll. SQLite has no such channel: its
    workers poll (and are kicked by submits in their own process)."""
    if not db_path.startswith("postgres"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
    serving_side, other_client = Tether(db_path), Tether(db_path)  # two stores, two connections
    worker = serving_side.worker(poll_interval=30.0)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        await asyncio.sleep(0.5)  # the worker has looked once and now waits 30 s for a kick
        run_id = other_client.submit(AGENT, 2)  # not this process's worker: no direct kick
        started = time.monotonic()
        while other_client.get(run_id).status != "succeeded":
            assert time.monotonic() - started < 10, "the worker waited for its 30 s poll"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await serving
        serving_side.close()
        other_client.close()


async def test_a_durable_timer_fires_well_before_the_poll_on_postgres(db_path: str) -> None:
    """The run suspends on a 3 s timer (1 s or less is slept inline, without suspending); its
    commit notifies, and the idle worker sleeps until the timer (its `next_wake`), not for its
    30 s poll."""
    _postgres_only(db_path)
    t = Tether(db_path)
    worker = t.worker(poll_interval=30.0)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        started = time.monotonic()
        run_id = t.submit(TIMER, TIMER_S)
        await _wait_for(lambda: t.get(run_id).status == "succeeded", within=WELL_BEFORE_THE_POLL,
                        why="the timer waited for the worker's 30 s poll")
        assert time.monotonic() - started >= TIMER_S  # the timer was not skipped either
        assert t.get(run_id).result == "woke"
    finally:
        stop.set()
        await serving
        t.close()


async def test_a_dead_workers_run_is_taken_over_at_its_lease_expiry_on_postgres(
        db_path: str) -> None:
    """Another owner claimed the run with a 3 s lease and never renewed it (a worker that
    died): the idle worker wakes at the expiry its claim saw, not at its 30 s poll."""
    _postgres_only(db_path)
    other, serving_side = Tether(db_path), Tether(db_path)
    run_id = other.submit(AGENT, 2)
    assert other.store.write(lambda tx: tx.claim("dead-worker", 1, 3.0)) == [run_id]
    worker = serving_side.worker(poll_interval=30.0)
    claimed: list[str] = []
    worker.claim_listeners.append(claimed.append)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        await _wait_for(lambda: other.get(run_id).status == "succeeded",
                        within=WELL_BEFORE_THE_POLL,
                        why="the dead worker's run waited for the 30 s poll")
        assert claimed == [run_id]
    finally:
        stop.set()
        await serving
        serving_side.close()
        other.close()


async def test_a_timer_set_by_another_process_wakes_an_idle_worker_on_postgres(
        db_path: str, tmp_path: Path) -> None:
    """A worker in a subprocess runs the run until it suspends on a timer, then exits. The
    worker here looked while that run was running (a live 30 s lease: nothing to wake for but
    its poll); the suspending commit's NOTIFY makes it look again and sleep until the timer."""
    _postgres_only(db_path)
    gate = tmp_path / "gate"
    script = (
        "import asyncio, sys\n"
        "from tether import Tether\n"
        "t = Tether(sys.argv[1])\n"
        "w = t.worker(poll_interval=0.2)\n"
        f"run_id = t.submit({GATED_TIMER!r}, {{'gate': sys.argv[2], 'seconds': {TIMER_S}}})\n"
        "print(run_id, flush=True)\n"
        "asyncio.run(w.serve(until=lambda: t.get(run_id).status != 'running' and "
        "t.get(run_id).status != 'queued'))\n"
        "t.close()\n"
    )
    other = subprocess.Popen([sys.executable, "-c", script, db_path, str(gate)],
                             stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    serving_side = Tether(db_path)
    worker = serving_side.worker(poll_interval=30.0)
    claimed: list[str] = []
    worker.claim_listeners.append(claimed.append)
    looks = 0
    run = worker.committer.run

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal looks
        result = await run(fn, *args, **kwargs)
        if getattr(fn, "func", None) is not None and fn.func.__name__ == "claim_runs":
            looks += 1
        return result

    worker.committer.run = counting  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    try:
        assert other.stdout is not None
        run_id = (await asyncio.to_thread(other.stdout.readline)).strip()
        await _wait_for(lambda: serving_side.get(run_id).status == "running", within=60,
                        why="the other process never started the run")
        serving = asyncio.create_task(worker.serve(stop=stop))
        await _wait_for(lambda: looks >= 1, within=60, why="the worker never looked")
        gate.touch()  # the run now suspends on its timer, in the other process
        opened = time.monotonic()
        await asyncio.to_thread(other.wait, 60)
        assert other.returncode == 0
        await _wait_for(lambda: serving_side.get(run_id).status == "succeeded",
                        within=WELL_BEFORE_THE_POLL,
                        why="the timer set in another process waited for the 30 s poll")
        assert time.monotonic() - opened >= TIMER_S
        assert claimed == [run_id]  # fired here, not by the process that set it
    finally:
        stop.set()
        if serving is not None:
            await serving
        if other.poll() is None:
            other.kill()
            other.wait()
        serving_side.close()


async def test_a_worker_held_back_by_a_tenant_limit_keeps_its_short_poll_on_postgres(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A queued run the worker may not take (its tenant is at its limit on another worker):
    a slot freed elsewhere commits no NOTIFY, so the worker keeps polling every poll_interval
    rather than sleeping until its safety poll (made 60 s here so the difference shows)."""
    _postgres_only(db_path)
    monkeypatch.setattr(claiming_module, "SAFETY_POLL_S", 60.0)
    other, serving_side = Tether(db_path), Tether(db_path, tenant_limits={"acme": 1})
    held = other.submit(AGENT, 1, tenant="acme")
    assert other.store.write(lambda tx: tx.claim("other-worker", 1, 600.0)) == [held]
    waiting = other.submit(AGENT, 2, tenant="acme")
    worker = serving_side.worker(poll_interval=0.2)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        await asyncio.sleep(1.0)  # it looked, and looked again: the limit holds the run back
        assert other.get(waiting).status == "queued"

        def finish(tx: Any) -> None:  # the other worker finishes: no run becomes runnable
            tx.update_run(held, status="succeeded")
            tx.release_lease(held)
        other.store.write(finish)
        await _wait_for(lambda: other.get(waiting).status == "succeeded",
                        within=WELL_BEFORE_THE_POLL,
                        why="the freed tenant slot waited for the safety poll")
    finally:
        stop.set()
        await serving
        serving_side.close()
        other.close()
