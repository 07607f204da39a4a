"""Fencing against a claim in flight, on SQLite and on PostgreSQL: a worker whose lease lapsed
writes nothing once another worker's claim of the run commits, even when its lease check was
already waiting for that claim's lock.

Before: on PostgreSQL the check locked the run's row only, and a check that had waited for the
claim re-read that row but not the lease joined to it: it saw its own old lease and wrote
(duplicate journal seqs in the PostgreSQL chaos test, `conflicting write ... events_by_run`)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.store.pg_support import PgSchema
from tether.store import LeaseLost, NewEvent, RunRecord, Store, Tx, open_store


def test_a_lease_check_waiting_for_a_claim_sees_the_new_owner(
        store: Store, store_url: str, pg_schema: PgSchema | None) -> None:
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="r1", agent="m:f", status="queued", input=None, root_id="r1")))
    assert store.write(lambda tx: tx.claim("old", 1, -1.0)) == ["r1"]  # its lease has lapsed
    claimer = open_store(store_url)
    claimed, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}  # by who: both finish at the claim's commit
    claimer_pid: list[int] = []

    def claim_and_hold(tx: Tx) -> list[str]:
        got = tx.claim("new", 1, 30.0)
        conn = getattr(tx, "conn", None)  # PostgreSQL: the session others wait for
        claimer_pid.append(getattr(getattr(conn, "info", None), "backend_pid", 0))
        claimed.set()
        assert release.wait(60), "the test never released the claim"
        return got

    def write_as_old_owner() -> None:
        event = NewEvent(1, "log", "1", None, None, time.time())

        def fenced_write(tx: Tx) -> None:
            tx.check_lease("r1", "old", 1)
            tx.append_events("r1", [event])

        try:
            store.write(fenced_write)
            outcome["old"] = "written"
        except LeaseLost as exc:
            outcome["old"] = exc

    holder = threading.Thread(
        target=lambda: outcome.update(new=claimer.write(claim_and_hold)))
    holder.start()
    try:
        assert claimed.wait(60)
        old_owner = threading.Thread(target=write_as_old_owner)
        old_owner.start()
        wait_until_blocked(pg_schema, claimer_pid[0])
    finally:
        release.set()
        holder.join(60)
    old_owner.join(60)
    claimer.close()
    assert outcome["new"] == ["r1"]
    assert isinstance(outcome["old"], LeaseLost), outcome
    assert "held by worker 'new'" in str(outcome["old"])
    assert store.load_events("r1") == []


def wait_until_blocked(pg_schema: PgSchema | None, claimer_pid: int) -> None:
    """Until a session waits on the claim's lock, the old owner's check (PostgreSQL says so:
    other tests and workers on the same server wait on other sessions); on SQLite
    its write waits for the write lock: a moment suffices, and were it late it would only see
    the committed claim, which the assertions accept as well."""
    if pg_schema is None:
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 60
    while not pg_schema.execute(
            "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (claimer_pid,)):
        if time.monotonic() > deadline:
            pytest.fail("the old owner's lease check never waited for the claim's lock")
        time.sleep(0.02)
