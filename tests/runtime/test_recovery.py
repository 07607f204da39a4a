"""Crash recovery: in-doubt steps, human resolution, non-determinism, leases and takeover.

A crash is reproduced exactly as it leaves the database: the journal holds a step's start but not
its outcome, and the run is still marked running under a dead worker's lease.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.store.pg_support import raw_sql
from tether import Tether
from tether.runtime import ops
from tether.runtime.errors import NotInDoubt, RunFinished
from tether.store import LeaseLost, NewEvent, dumps

from . import agents_core as A


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


def crash_mid_step(tether: Tether, agent: object, step: str) -> str:
    """Leave the store as a worker SIGKILLed during `step` would: started, never finished,
    lease held by a dead worker and already expired."""
    run_id = tether.submit(agent, None)
    dead = "dead-worker"
    tether.store.write(lambda tx: tx.claim(dead, 1, -1.0))  # lease already expired

    def op(tx):  # type: ignore[no-untyped-def]
        now = time.time()
        tx.append_events(run_id, [
            NewEvent(2, "run_started", None, None, dumps({"worker": dead}), now),
            NewEvent(3, "step_started", "1", step, dumps({"attempt": 1}), now),
        ])

    tether.store.write(op)
    return run_id


async def test_non_idempotent_in_doubt_step_waits_for_a_human(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_charge, "charge")
    rec = await tether.drive(run_id)
    assert rec.status == "waiting"
    assert "'charge'" in rec.reason and f"tether resolve {run_id}" in rec.reason
    assert A.CALLS["charge"] == 0, "an in-doubt non-idempotent step was silently re-run"
    assert rec.options["in_doubt"] == {"key": "1", "step": "charge"}
    # a second worker pass does not touch it either
    assert (await tether.drive(run_id)).status == "waiting" and A.CALLS["charge"] == 0


async def test_resolve_retry_runs_again_with_the_original_idempotency_key(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_charge, "charge")
    await tether.drive(run_id)
    tether.resolve(run_id, "retry")
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and rec.result == {"charged": 10}
    assert A.CALLS["charge"] == 1 and [f"{run_id}:3"] == A.KEYS


async def test_resolve_skip_uses_the_given_result(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_charge, "charge")
    await tether.drive(run_id)
    tether.resolve(run_id, "skip", result={"charged": 10, "by": "operator"})
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and rec.result == {"charged": 10, "by": "operator"}
    assert A.CALLS["charge"] == 0


async def test_resolve_fail_raises_in_the_agent(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_charge, "charge")
    await tether.drive(run_id)
    tether.resolve(run_id, "fail")
    rec = await tether.drive(run_id)
    assert rec.status == "failed" and "ResolvedAsFailed" in (rec.error or "")
    assert A.CALLS["charge"] == 0


async def test_resolve_errors_are_specific(tether: Tether) -> None:
    rec = await tether.run(A.sequential, 1)
    with pytest.raises(RunFinished, match="already finished"):
        tether.resolve(rec.id, "retry")
    waiting = await tether.run(A.waits_then_steps, None)
    with pytest.raises(NotInDoubt, match="no in-doubt step"):
        tether.resolve(waiting.id, "skip")
    with pytest.raises(ValueError, match="retry, skip or fail"):
        tether.resolve(waiting.id, "maybe")


async def test_idempotent_in_doubt_step_is_rerun_automatically(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_idempotent_charge, "charge")
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded"
    assert A.CALLS["charge_idempotent"] == 1
    assert rec.result["key"] == f"{run_id}:3"  # same key as the crashed attempt
    attempts = [e.data["attempt"] for e in tether.events(run_id) if e.kind == "step_started"]
    assert attempts == [1, 2]


async def test_a_step_taking_the_idempotency_key_is_rerun_with_it(tether: Tether) -> None:
    run_id = crash_mid_step(tether, A.uses_keyed_charge, "charge")
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and A.CALLS["keyed_charge"] == 1
    assert len(A.KEYS) == 1 and A.KEYS[0] == f"{run_id}:3"


async def test_non_determinism_names_the_step_and_both_sides(tether: Tether) -> None:
    first = await tether.run(A.changed_a, None)
    assert first.status == "waiting"
    # the operator deploys changed code under the waiting run
    tether.store.write(lambda tx: tx.update_run(first.id, spec_version="v2"))
    raw_sql(tether.store, "UPDATE runs SET agent=? WHERE id=?",
            ("tests.runtime.agents_core:changed_b", first.id))
    tether.signal(first.id, "go", 1)
    rec = await tether.drive(first.id)
    assert rec.status == "failed"
    assert "non-determinism" in rec.error and "step 1" in rec.error
    assert "step 'fetch'" in rec.error and "step 'download'" in rec.error
    assert A.CALLS["download"] == 0


async def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(tether: Tether) -> None:
    run_id = tether.submit(A.sequential, 3)
    claimed = tether.store.write(lambda tx: tx.claim("worker-a", 10, 0.2))
    assert claimed == [run_id]
    # worker-a stalls; while its lease is valid nobody else may take the run
    assert tether.store.write(lambda tx: tx.claim("worker-b", 10, 5.0)) == []
    await asyncio.sleep(0.3)
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and rec.result == 3
    # worker-a wakes up and tries to write: fenced
    with pytest.raises(LeaseLost, match="worker-a"):
        tether.store.write(lambda tx: tx.check_lease(run_id, "worker-a"))
    assert rec.attempts == 2


async def test_live_worker_renews_its_lease(tether: Tether) -> None:
    t = Tether(tether.store, lease_ttl=0.3)
    run_id = t.submit(A.long_step, 1.0)
    rec = await t.drive(run_id)
    assert rec.status == "succeeded" and rec.attempts == 1  # never taken over while alive
    assert A.CALLS["slow"] == 1


async def test_graceful_shutdown_hands_runs_back_without_failing_steps(tether: Tether) -> None:
    run_id = tether.submit(A.sequential, 50)
    stop = asyncio.Event()
    worker = tether.worker(drain_timeout=5.0)
    task = asyncio.create_task(worker.serve(stop=stop))
    while tether.store.count_events(run_id) < 10:
        await asyncio.sleep(0.001)
    stop.set()
    await task
    mid = tether.get(run_id)
    assert mid.status in ("queued", "succeeded")
    assert not any(e.kind == "step_failed" for e in tether.events(run_id))
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and rec.result == sum(range(50))
    assert A.CALLS["seq"] == 50  # no step ran twice across the shutdown


async def test_send_signal_to_finished_run_is_refused(tether: Tether) -> None:
    rec = await tether.run(A.sequential, 1)
    with pytest.raises(RunFinished, match="cannot deliver signal 'go'"):
        tether.signal(rec.id, "go")
    with pytest.raises(RunFinished):
        tether.store.write(ops.send_signal(rec.id, "go", None))
    assert tether.store.pending_signals(rec.id) == []
