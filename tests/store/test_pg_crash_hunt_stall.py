"""PostgreSQL crash hunt: a worker that stalls (SIGSTOP: a VM paused, a process swapped out, a
host cut off by a partition that sends no FIN) *inside* a write transaction, after its fence
(`check_lease`) took the run's row lock. Its lease expires, but the row stays locked by a
session that is "idle in transaction" for as long as the stall lasts, and every other worker's
claim (FOR UPDATE SKIP LOCKED) skips the run: nobody takes it over. Killing the process ends
it (the kernel closes the socket); a host that vanishes leaves it to TCP keepalive (hours by
default). PostgreSQL's `idle_in_transaction_session_timeout` ends such a session.

A server of the module's own (`pg_crash_hunt_support.PrivatePg`).
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from tests.runtime.crash_hunt_support import MODULE

from .pg_crash_hunt_support import (
    PgLab,
    PrivatePg,
    lab_fixture,  # noqa: F401 (a fixture)
    server_fixture,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _sessions(server: PrivatePg, database: str, where: str) -> list[int]:
    return [p for (p,) in server.execute(
        f"SELECT pid FROM pg_stat_activity WHERE datname=%s AND {where}", params=(database,))]


def _stall_inside_a_commit(lab: PgLab, server: PrivatePg) -> tuple[str, int]:
    """The worker's commit of s1's completion waits on the run's row (locked by the test);
    the worker is frozen; the test lets go of the row: the worker's session takes the lock
    and stays idle in transaction, holding it. Returns (run id, frozen worker's pid)."""
    database = lab.db.rsplit("/", 1)[1]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["s1", "s2"]})
    lab.arm("s1.after")
    first = lab.worker()
    lab.reached("s1.after")
    with psycopg.connect(lab.db) as locker:
        locker.execute("SELECT 1 FROM runs WHERE id=%s FOR UPDATE", (run_id,))
        lab.release("s1.after")
        lab.wait_until(lambda: _sessions(server, database, "wait_event='transactionid'"),
                       "the worker's commit to wait on the row")
        os.kill(first.pid, signal.SIGSTOP)
        locker.rollback()
    lab.wait_until(lambda: _sessions(server, database, "state='idle in transaction'"),
                   "the frozen worker's session to hold the row, idle in transaction")
    return run_id, first.pid


@pytest.mark.timeout(60)
def test_with_idle_in_transaction_session_timeout_the_run_is_taken_over_and_fenced(
        lab: PgLab, server: PrivatePg) -> None:
    """The mitigation, set on the database: the stalled session is ended after 2 s, another
    worker takes the run over, and the thawed worker, whose transaction died with its
    session, writes nothing (its retried batch meets the new owner's lease)."""
    database = lab.db.rsplit("/", 1)[1]
    server.execute(f"ALTER DATABASE {database} SET idle_in_transaction_session_timeout = '2s'")
    run_id, frozen = _stall_inside_a_commit(lab, server)
    try:
        lab.worker()
        lab.wait_until(lambda: any(e.kind == "run_resumed" for e in lab.tether.events(run_id)),
                       "another worker to take the run over", timeout=20)
        lab.wait(run_id, "waiting", in_doubt=True)  # s1 started, its completion never written
        events = len(lab.tether.events(run_id))
    finally:
        os.kill(frozen, signal.SIGCONT)
    lab.settle(lambda: False, 2.0)  # the thawed worker's retried batch and heartbeat
    assert len(lab.tether.events(run_id)) == events
    run, decisions = lab.finish_with_human(
        run_id, lambda r: ["s1", "s2"][int(r.options["in_doubt"]["key"]) - 1])
    assert decisions == [(run_id, "skip")] and run.result == ["did s1", "did s2"]
    lab.assert_exactly_once(["s1", "s2"])
    assert lab.journal_violations(run_id) == []
