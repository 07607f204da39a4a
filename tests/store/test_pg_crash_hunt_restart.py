"""PostgreSQL crash hunt: the server itself goes away under running workers — restarted
(`pg_ctl restart`, fast and immediate), or a worker's session killed in the middle of a
transaction (before its COMMIT, and after it, with the COMMIT applied but never answered).

A server of the module's own (`pg_crash_hunt_support.PrivatePg`), never the shared one.
"""

from __future__ import annotations

import time

import pytest

from tests.runtime.crash_hunt_support import DELAY_ENV, MODULE
from tether import Tether

from .pg_crash_hunt_support import (
    PgLab,
    PrivatePg,
    Workload,
    hunt,
    lab_fixture,  # noqa: F401 (a fixture)
    server_fixture,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _restart(server: PrivatePg, mode: str) -> None:
    server.stop(mode)
    time.sleep(0.5)  # the workers meet a server that is away, not only one that restarted
    server.start()


@pytest.mark.timeout(90)
def test_three_workers_through_two_server_restarts_and_kills(server: PrivatePg,
                                                             lab: PgLab) -> None:
    """56 root runs (68 with children) on 3 workers; the server is stopped and started again
    twice while they execute (a fast shutdown: sessions told; an immediate one: a crash, no
    shutdown checkpoint, sessions cut mid-transaction), and 4 workers are SIGKILLed. Every
    worker process survives the restarts (none exits by itself), every run ends, every effect
    once."""
    lab.env[DELAY_ENV] = "40"
    work = Workload(lab, pipelines=30, signalled=8, timed=8, parents=6, governed=4)
    restarts: list[str] = []

    def tick(elapsed: float) -> None:
        for at, mode in ((2.0, "fast"), (6.0, "immediate")):
            # not while a worker is still starting: see `PgLab.all_connected`
            if elapsed >= at and mode not in restarts and lab.all_connected(server.port):
                restarts.append(mode)
                _restart(server, mode)

    counts = hunt(lab, work, workers=3, kills=4, seed=5, timeout=55, on_tick=tick,
                  hold=lambda: len(restarts) < 2)
    print(counts, restarts)
    assert restarts == ["fast", "immediate"], restarts  # the workload was held open for them
    assert lab.kills >= 4, counts
    assert len(lab.alive()) == 3
    work.check()


def _listeners(server: PrivatePg) -> int:
    return len(server.execute(
        "SELECT pid FROM pg_stat_activity WHERE starts_with(query, 'LISTEN ')"))


@pytest.mark.timeout(60)
def test_workers_listen_again_after_the_server_restarted(server: PrivatePg,
                                                        lab: PgLab) -> None:
    for _ in range(2):
        lab.worker()
    lab.wait_until(lambda: _listeners(server) == 2, "both workers to listen")
    _restart(server, "fast")
    # they are serving (a run submitted now is executed, within the 5 s safety poll) ...
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["after-restart"]})
    lab.wait(run_id, "succeeded", timeout=20)
    # ... but do they hear NOTIFY again?
    lab.wait_until(lambda: _listeners(server) == 2, "both workers to listen again",
                   timeout=15)


def _backend(server: PrivatePg, database: str, wait_event: str) -> list[int]:
    """The sessions of `database` waiting on `wait_event` (or any lock: "Lock")."""
    column = "wait_event_type" if wait_event == "Lock" else "wait_event"
    return [p for (p,) in server.execute(
        f"SELECT pid FROM pg_stat_activity WHERE datname=%s AND {column}=%s",
        params=(database, wait_event))]


@pytest.mark.timeout(60)
def test_a_session_killed_before_its_commit_is_retried_once(server: PrivatePg,
                                                            lab: PgLab) -> None:
    """The worker's transaction (the step's completion) waits on the run's row, locked by
    the test; its session is terminated twice there, mid-transaction. The batch goes again on
    a fresh session each time and commits once the lock is gone: the step is completed once,
    not in doubt, and nothing is journaled twice."""
    import psycopg

    database = lab.db.rsplit("/", 1)[1]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["k1", "k2", "k3"]})
    lab.arm("k2.after")
    lab.worker()
    lab.reached("k2.after")
    with psycopg.connect(lab.db) as locker:
        locker.execute("SELECT 1 FROM runs WHERE id=%s FOR UPDATE", (run_id,))
        lab.release("k2.after")
        killed: set[int] = set()
        found: list[int] = []

        def waiting() -> bool:  # the pid seen waiting is the one terminated (a second read
            # of pg_stat_activity could miss it: CI once found it empty a moment later)
            found[:] = sorted(set(_backend(server, database, "Lock")) - killed)
            return bool(found)

        for _ in range(2):
            lab.wait_until(waiting, "the worker's commit to wait on the row lock")
            pid = found[0]
            server.execute("SELECT pg_terminate_backend(%s)", params=(pid,))
            killed.add(pid)
        locker.rollback()
    run = lab.wait(run_id, "succeeded", in_doubt=False)
    assert run.result == ["did k1", "did k2", "did k3"]
    lab.assert_exactly_once(["k1", "k2", "k3"])
    kinds = [(e.kind, e.key) for e in lab.tether.events(run_id)]
    assert ("step_in_doubt", "2") not in kinds, kinds
    assert lab.journal_violations(run_id) == []
    assert run.attempts == 1, kinds  # never handed over: the write was simply tried again


@pytest.mark.timeout(60)
def test_a_commit_applied_but_never_answered_is_not_journaled_twice(server: PrivatePg,
                                                                   lab: PgLab) -> None:
    """The worker's COMMIT is applied on the server, which then waits for a synchronous
    standby that does not exist (`synchronous_standby_names`); the session is terminated
    there: the client never hears whether it committed (`StoreOutcomeUnknown`). The run is
    taken up again from its journal, which holds the step's completion: that step is not in
    doubt, not done again, and no event is written twice."""
    database = lab.db.rsplit("/", 1)[1]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["u1", "u2", "u3"]})
    lab.arm("u2.after")
    lab.worker()
    lab.reached("u2.after")
    unanswered = 0
    server.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    server.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        lab.release("u2.after")
        # the heartbeat's renewals commit too (and hang there as well): terminate each hung
        # COMMIT until the one that carried the step's completion was among them (visible
        # to others once its session is gone)
        for _ in range(30):
            lab.wait_until(lambda: _backend(server, database, "SyncRep"),
                           "a COMMIT of the worker to wait for the standby")
            for pid in _backend(server, database, "SyncRep"):
                server.execute("SELECT pg_terminate_backend(%s)", params=(pid,))
                unanswered += 1
            time.sleep(0.2)
            if lab.step_events(run_id, "step_completed", "tool:send")[1:]:
                break
        else:
            raise AssertionError("the step's completion never waited for the standby")
    finally:
        server.execute("ALTER SYSTEM RESET synchronous_standby_names")
        server.execute("SELECT pg_reload_conf()")
    # the batch that carried the completion may carry the next step's start as well: that
    # step is then in doubt (its effect not done: the worker stopped at the unknown outcome),
    # and the human retries it from the ledger
    run, decisions = lab.finish_with_human(
        run_id, lambda r: ["u1", "u2", "u3"][int(r.options["in_doubt"]["key"]) - 1], 30)
    assert run.status == "succeeded" and run.result == ["did u1", "did u2", "did u3"]
    assert decisions in ([], [(run_id, "retry")]), decisions
    lab.assert_exactly_once(["u1", "u2", "u3"])
    kinds = [(e.kind, e.key) for e in lab.tether.events(run_id)]
    assert ("step_in_doubt", "2") not in kinds, kinds  # u2's completion was applied: kept
    assert lab.journal_violations(run_id) == []
    lab.assert_no_silent_rerun(run_id)
    print("unanswered commits", unanswered, "attempts", run.attempts, decisions, kinds)
    # the worker stopped the run at the unknown outcome; it was taken up again from the journal
    assert run.attempts == 2 + len(decisions), kinds  # a --retry queues it once more


@pytest.mark.timeout(60)
def test_every_read_of_a_store_survives_a_server_restart(server: PrivatePg) -> None:
    """After a restart every pooled connection is dead: each read finds that out and goes
    again on a fresh one, the tree walk (`descendants`, which budget guards call) and the
    clock reading too, instead of raising psycopg's `OperationalError` to the caller."""
    from tether.store._postgres import PostgresStore

    store = PostgresStore(server.url(server.new_database()), min_size=4)
    try:
        parent = Tether(store).submit(f"{MODULE}:parent", {"tag": "r", "children": 0})
        store._pool.wait(timeout=10)  # every pooled connection open (and about to die)
        _restart(server, "fast")
        assert store.descendants(parent) == []
        assert abs(store.clock_offset()) < 5
        assert store.get_run(parent) is not None
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_the_schema_check_of_a_store_opening_survives_a_server_restart(
        server: PrivatePg) -> None:
    """A worker opening its store while the server restarts: its pool's sessions died before
    the schema check ran on one. The check goes again on a fresh session (a worker exited
    with psycopg's traceback here, in the restart crash hunt)."""
    from tether.store._migrations import MIGRATIONS
    from tether.store._postgres import PostgresStore
    from tether.store._postgres_connect import migrate
    from tether.store._postgres_schema import postgres_migrations

    store = PostgresStore(server.url(server.new_database()), min_size=4)
    try:
        store._pool.wait(timeout=10)
        _restart(server, "fast")
        latest = MIGRATIONS[-1][0]
        migrate(store._pool, store.url, postgres_migrations(MIGRATIONS), latest=latest,
                must_exist=True)
        assert store.schema_version() == latest
    finally:
        store.close()
