"""A write made under a lease that ran out unclaimed keeps the run its writer's.

A worker whose heartbeat could not renew its lease (the database restarting, the process
paused) still holds the run until another worker claims it, and its writes pass the fence. The
PostgreSQL crash hunt caught the consequence: a step's start written just after the database
came back, the effect running, another worker's claim a moment later declaring the step in
doubt, the operator seeing no effect yet and retrying it — the effect twice. Every fenced write
now extends the lease for a whole ttl, so no claim can follow it before the heartbeat renews."""

from __future__ import annotations

import asyncio
from typing import Any

from tether import Context, Tether
from tether.store import open_store

INTRUDER = "intruder-worker"


def _sql(url: str, statement: str) -> str:
    return statement if url.startswith("postgresql") else statement.replace("%s", "?")


def _expire(url: str, run_id: str) -> None:
    """What an outage longer than the ttl leaves behind: the lease's time is up."""
    store = open_store(url)
    try:
        store.write(lambda tx: tx.conn.execute(  # type: ignore[attr-defined]
            _sql(url, "UPDATE leases SET expires_at=0 WHERE run_id=%s"), (run_id,)))
    finally:
        store.close()


def _claim_as_another_worker(url: str) -> list[str]:
    """The side effect: it runs while another worker tries to take the run over."""
    store = open_store(url)
    try:
        return list(store.write(lambda tx: tx.claim(INTRUDER, 10, 30.0)))
    finally:
        store.close()


async def outlives_its_lease(ctx: Context, url: str) -> Any:
    await ctx.step("before", lambda: 1)
    _expire(url, ctx.run_id)  # between two steps: the heartbeat could not renew
    return await ctx.step("effect", _claim_as_another_worker, url)


async def test_a_step_started_under_a_lapsed_lease_cannot_be_taken_over(
        tether: Tether, db_path: str) -> None:
    run_id = tether.submit(outlives_its_lease, db_path)
    try:
        run = await asyncio.wait_for(tether.drive(run_id), 20)
    except TimeoutError:  # taken over: its worker lost the run mid-step
        holder = tether.store.write(lambda tx: tx.lease_holder(run_id))
        raise AssertionError(f"another worker claimed the run while its step ran ({holder})"
                             ) from None
    assert run.status == "succeeded", (run.error, run.reason)
    assert run.result == []  # the other worker got nothing to claim
    steps = [e.name for e in tether.events(run_id) if e.kind == "step_started"]
    assert steps.count("effect") == 1
