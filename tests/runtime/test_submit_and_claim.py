"""`Worker.submit_and_claim`: a run submitted by a caller that waits for it is created and claimed
in one durable transaction, and starts executing at once.

Why: an MCP tool call is a run the server submits and waits for. Submitting, then waking the
worker's loop to claim it, cost two commits in sequence (two fsyncs: on a busy disk 4-8 ms each)
per call. These tests fail before the method existed; they check the one transaction, that the
run is this worker's when the call returns, that older queued runs keep their turn, and that a
worker that is not serving only queues the run.
"""

from __future__ import annotations

import asyncio
import time

from tests.runtime.transactions import count_transactions
from tether import Tether
from tether.runtime import Worker, new_run_id
from tether.store import RunRecord

AGENT = "tests.runtime.agents_core:sequential"


def _run(n: int) -> RunRecord:
    run_id = new_run_id()
    return RunRecord(id=run_id, agent=AGENT, status="queued", input=n, tenant="default",
                     root_id=run_id)


async def _settled(t: Tether, run_id: str) -> str:
    started = time.monotonic()
    while (status := t.get(run_id).status) not in ("succeeded", "failed"):
        assert time.monotonic() - started < 10, f"run {run_id} is still {status}"
        await asyncio.sleep(0.01)
    return status


async def _serving(worker: Worker) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.serve(stop=stop))
    while worker._kick is None:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the loop's first claim (nothing to claim) is done
    return stop, task


async def test_the_run_is_created_and_claimed_in_one_transaction(db_path: str) -> None:
    t = Tether(db_path)
    worker = t.worker(poll_interval=30.0, lease_ttl=30.0)
    # on PostgreSQL the submit's NOTIFY wakes the worker, whose (empty) claim is a transaction
    # of its own, at a moment of its own: this test counts submit_and_claim's alone
    worker._listen = lambda loop: None  # type: ignore[method-assign]
    stop, serving = await _serving(worker)
    try:
        counted = count_transactions(worker)
        run = _run(2)
        claimed = await worker.submit_and_claim(run)
        assert counted[0] == 1, f"{counted[0]} transactions to submit and claim one run"
        assert claimed is True
        assert run.id in worker.executing or t.get(run.id).status == "succeeded"
        owner = worker.store.leases([run.id]).get(run.id, ("", 0.0))[0]
        assert owner == worker.owner or t.get(run.id).status == "succeeded"
        assert await _settled(t, run.id) == "succeeded"
        assert t.get(run.id).result == 1  # 0 + 1: the agent ran, once
        assert [e.kind for e in t.store.load_events(run.id)][:2] == ["run_submitted",
                                                                     "run_started"]
    finally:
        stop.set()
        await serving
        t.close()


async def test_an_older_queued_run_keeps_its_turn(db_path: str) -> None:
    t = Tether(db_path)
    older = t.submit(AGENT, 1)  # queued before the worker serves, claimed by nobody yet
    worker = t.worker(poll_interval=30.0, lease_ttl=30.0, concurrency=1)
    worker._kick = asyncio.Event()  # serving-like, without the loop: only our claim claims
    try:
        run = _run(1)
        claimed = await worker.submit_and_claim(run)
        assert claimed is False
        assert worker.executing == [older] or t.get(older).status == "succeeded"
        assert t.get(run.id).status == "queued"
        assert worker._kick.is_set(), "the worker was not told a run is queued"
        assert await _settled(t, older) == "succeeded"
    finally:
        worker._kick = None
        t.close()


async def test_a_worker_that_does_not_serve_only_queues_the_run(db_path: str) -> None:
    t = Tether(db_path)
    worker = t.worker(poll_interval=30.0)
    try:
        run = _run(1)
        assert await worker.submit_and_claim(run) is False
        assert t.get(run.id).status == "queued"
        assert worker.executing == []
    finally:
        t.close()
