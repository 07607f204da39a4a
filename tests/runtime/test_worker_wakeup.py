"""A worker's wake-ups: a run submitted while the worker is claiming starts at once.

Before: `Worker.serve` cleared its wake-up event after the claim, which awaits the committer;
a kick arriving during that await (a run submitted meanwhile) was erased, and the run waited for
the next poll (found by the MCP server's latency benchmark: 11-16 ms per call instead of 3 ms
with the default 0.2 s poll; here the poll is 30 s so a lost kick cannot go unnoticed).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tether import Tether

AGENT = "tests.runtime.agents_core:sequential"


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
        if getattr(fn, "func", None) is not None and fn.func.__name__ == "_claim":
            claims += 1
            if claims == 1:  # arrives while the first claim is in flight: kicks the worker
                late.append(t.submit(AGENT, 2))
        return result

    worker.committer.run = claim_then_submit  # type: ignore[method-assign]
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
