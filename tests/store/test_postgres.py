"""What only the PostgreSQL store does: the migration dialect, URLs and connection errors, the
password kept out of messages, read-only opens, and giving way to another transaction's row
lock. What every backend does is in test_store.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.store.pg_support import PgSchema, server_url
from tether.store import (
    LATEST_VERSION,
    NewEvent,
    RunRecord,
    StoreError,
    StoreMissing,
    open_store,
)
from tether.store._migrations import MIGRATIONS
from tether.store._postgres import PostgresStore
from tether.store._postgres_schema import UnsupportedMigration, postgres_migrations, to_postgres


@pytest.fixture
def schema() -> Iterator[PgSchema]:
    s = PgSchema()
    yield s
    s.drop()


def test_every_shared_migration_has_a_postgres_form() -> None:
    translated = postgres_migrations()
    assert [v for v, _ in translated] == [v for v, _ in MIGRATIONS]
    text = ";".join(s for _, statements in translated for s in statements)
    for sqlite_only in ("BLOB", "WITHOUT ROWID", "AUTOINCREMENT", " REAL"):
        assert sqlite_only not in text
    assert "DOUBLE PRECISION" in text and "BYTEA" in text


def test_a_migration_without_a_translation_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedMigration, match=r"migration 9 uses 'INSERT OR'.*OVERRIDES"):
        to_postgres(9, "INSERT OR REPLACE INTO meta VALUES ('a', 'b')")


def test_timestamps_keep_sub_second_precision(schema: PgSchema) -> None:
    # SQLite's REAL is 8 bytes and PostgreSQL's 4: an untranslated column would round
    # 1.8e9 to the nearest 128 seconds
    store = open_store(schema.url)
    try:
        store.write(lambda tx: tx.insert_run(RunRecord(
            id="r1", agent="m:f", status="queued", input=None, root_id="r1",
            created_at=1_796_549_811.516)))
        run = store.get_run("r1")
        assert run is not None and run.created_at == 1_796_549_811.516
    finally:
        store.close()


def test_schemas_in_one_database_are_separate_stores(schema: PgSchema) -> None:
    other = PgSchema()
    a, b = open_store(schema.url), open_store(other.url)
    try:
        a.write(lambda tx: tx.insert_run(RunRecord(id="only-a", agent="m:f", status="queued",
                                                   input=None, root_id="only-a")))
        assert a.get_run("only-a") is not None and b.get_run("only-a") is None
    finally:
        a.close()
        b.close()
        other.drop()


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    t0 = time.perf_counter()
    with pytest.raises(StoreError) as err:
        PostgresStore("postgresql://tether:s3cret@127.0.0.1:1/nowhere", busy_timeout=2.0)
    assert time.perf_counter() - t0 < 10
    text = str(err.value)
    assert "cannot connect to PostgreSQL at 'postgresql://tether@127.0.0.1:1/nowhere'" in text
    assert "make postgres" in text and "s3cret" not in text


def test_a_read_only_open_of_an_empty_database_creates_nothing(schema: PgSchema) -> None:
    with pytest.raises(StoreMissing, match="does not exist; nothing was created"):
        open_store(schema.url, must_exist=True)
    assert schema.execute("SELECT count(*) FROM pg_tables WHERE schemaname=%s",
                          (schema.name,)) == [(0,)]
    open_store(schema.url).close()
    store = open_store(schema.url, must_exist=True)
    assert store.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]
    store.close()


def test_workers_starting_together_migrate_once(schema: PgSchema) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            open_store(schema.url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert schema.execute("SELECT value FROM meta") == [(str(LATEST_VERSION),)]


def test_write_batch_without_waiting_gives_way_to_a_row_lock(schema: PgSchema) -> None:
    store = open_store(schema.url)
    store.write(lambda tx: tx.insert_run(RunRecord(id="r1", agent="m:f", status="queued",
                                                   input=None, root_id="r1")))
    ev = NewEvent(1, "log", "1", None, None, time.time())

    def touch(tx):  # type: ignore[no-untyped-def]
        tx.update_run("r1", reason="x")
        tx.append_events("r1", [ev])

    holder = psycopg.connect(schema.url)
    try:
        holder.execute("SELECT 1 FROM runs WHERE id='r1' FOR UPDATE")
        t0 = time.perf_counter()
        assert store.write_batch([touch], wait=False) is None
        assert time.perf_counter() - t0 < 1.0
    finally:
        holder.rollback()
        holder.close()
    assert store.load_events("r1") == []  # nothing was applied
    assert store.write_batch([touch], wait=False) == [(True, None)]
    assert [e.seq for e in store.load_events("r1")] == [1]
    store.close()


def test_the_test_server_is_the_one_make_postgres_runs() -> None:
    url = server_url()
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    assert row == ("on",)  # the benchmarks' durability promise: commits are flushed


def test_listeners_hear_of_runnable_runs_from_other_connections(schema: PgSchema) -> None:
    worker_side, client_side = open_store(schema.url), open_store(schema.url)
    elsewhere = PgSchema()
    unrelated = open_store(elsewhere.url)
    heard = threading.Event()
    stop = worker_side.listen(heard.set)  # type: ignore[attr-defined]
    try:
        # a journal write makes nothing runnable, nor does a run in another store
        client_side.write(lambda tx: tx.insert_run(RunRecord(
            id="w1", agent="m:f", status="waiting", input=None, root_id="w1")))
        unrelated.write(lambda tx: tx.insert_run(RunRecord(
            id="q0", agent="m:f", status="queued", input=None, root_id="q0")))
        assert not heard.wait(0.5)
        client_side.write(lambda tx: tx.insert_run(RunRecord(
            id="q1", agent="m:f", status="queued", input=None, root_id="q1")))
        assert heard.wait(5.0), "a submitted run woke nobody"
        heard.clear()
        client_side.write(lambda tx: tx.update_run("w1", status="queued"))  # a signal's wake
        assert heard.wait(5.0), "a woken run woke nobody"
        heard.clear()
        # a rolled-back transaction notifies nobody
        with pytest.raises(ValueError):
            client_side.write(lambda tx: (tx.update_run("w1", status="queued"),
                                          (_ for _ in ()).throw(ValueError("refused"))))
        assert not heard.wait(0.5)
    finally:
        stop()
        for s in (worker_side, client_side, unrelated):
            s.close()
        elsewhere.drop()


def test_an_exhausted_pool_is_a_clear_error_not_a_hang(schema: PgSchema) -> None:
    store = PostgresStore(schema.url, max_size=1, busy_timeout=0.5)
    held = store._pool.getconn()  # another thread of this process sits on the only connection
    try:
        t0 = time.perf_counter()
        with pytest.raises(StoreError, match=r"no free connection within 0.5s \(all 1 of"):
            store.get_run("r1")
        ((ok, err),) = store.write_batch([lambda tx: None]) or []
        assert not ok and "no free connection" in str(err)
        assert store.write_batch([lambda tx: None], wait=False) is None  # gives way at once
        assert time.perf_counter() - t0 < 5
    finally:
        store._pool.putconn(held)
    assert store.get_run("r1") is None
    store.close()


def _terminate(schema: PgSchema, application: str) -> int:
    """Close every server connection of `application` from the server's side, as a restart or
    an idle-connection reaper does; returns how many there were."""
    return len(schema.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = %s", (application,)))


def test_pooled_connections_the_server_closed_are_replaced(schema: PgSchema) -> None:
    """A connection found dead when a batch or a read begins is replaced, and the batch or the
    read goes on: nothing of it was committed. Before, the next write of every process whose
    pooled connections a server restart had closed failed ("terminating connection due to
    administrator command"), and a worker's claim loop ended on it."""
    application = f"tether_closed_{schema.name}"
    store = PostgresStore(f"{schema.url}&application_name={application}", min_size=2,
                          max_size=2)
    try:
        store.write(lambda tx: tx.insert_run(RunRecord(id="r1", tenant="t", agent="a:b",
                                                       input=None, status="queued")))
        assert _terminate(schema, application) == 2
        store.write(lambda tx: tx.insert_run(RunRecord(id="r2", tenant="t", agent="a:b",
                                                       input=None, status="queued")))
        assert _terminate(schema, application) >= 1
        run = store.get_run("r2")
        assert run is not None and run.status == "queued"
        assert [r.id for r in store.list_runs()] == ["r2", "r1"]  # each written once
    finally:
        store.close()


def test_no_statement_is_jit_compiled(schema: PgSchema) -> None:
    """A backlog submitted to a fresh table, not analyzed yet, made the planner estimate
    millions of rows for the runs-tree query every finishing run makes: over `jit_above_cost`,
    so each one was JIT-compiled (~10-18 ms for a 0.05 ms query) and a worker draining 10,000
    queued runs crawled until autovacuum's analyze. Here a session's `jit_above_cost=0` makes
    every statement of a session with JIT on compiled; the store's sessions must not be."""
    from urllib.parse import quote

    url = schema.url + quote(" -cjit_above_cost=0")
    query = ("EXPLAIN (ANALYZE) WITH RECURSIVE tree(id) AS (SELECT id FROM runs WHERE "
             "parent_id='r1' UNION ALL SELECT r.id FROM runs r JOIN tree t ON "
             "r.parent_id = t.id) SELECT id FROM runs WHERE id IN (SELECT id FROM tree)")
    store = PostgresStore(url)
    try:
        with psycopg.connect(url, autocommit=True) as plain:  # the premise: JIT would happen
            if plain.execute("SELECT pg_jit_available()").fetchone() == (True,):
                plan = "\n".join(r[0] for r in plain.execute(query.encode()).fetchall())
                assert "JIT:" in plan
        plan = "\n".join(r[0] for r in store._query(query))
        assert "JIT:" not in plan and "Execution Time" in plan
        assert store._query("SHOW jit") == [("off",)]
    finally:
        store.close()


def test_a_stalled_transaction_is_ended_unless_the_deployment_says_otherwise(
        schema: PgSchema) -> None:
    """A worker frozen inside a write transaction (SIGSTOP, a paused VM) kept its runs' rows
    locked past its lease, and every claim skipped them (tests/store/test_pg_crash_hunt_stall.py
    shows the takeover once the server ends such a session). Each session ends one after 45 s;
    a value the URL (or the database) gives is kept."""
    from urllib.parse import quote

    store = PostgresStore(schema.url)
    told = PostgresStore(schema.url + quote(" -cidle_in_transaction_session_timeout=2s"))
    try:
        assert store._query("SHOW idle_in_transaction_session_timeout") == [("45s",)]
        assert told._query("SHOW idle_in_transaction_session_timeout") == [("2s",)]
    finally:
        store.close()
        told.close()


def test_a_prepared_statement_met_on_another_session_is_taken_for_a_pooler() -> None:
    """Behind PgBouncer in transaction mode (four workers killed at random), a run failed with
    `bind message supplies 7 parameters, but prepared statement "_pg3_0" requires 1` (08P01):
    another client's statement of the same name on that server session. Like a missing or
    doubled one, it turns prepared statements off and the transaction runs again."""
    from tether.store._postgres_connect import pooled_away

    met = psycopg.errors.ProtocolViolation(
        'bind message supplies 7 parameters, but prepared statement "_pg3_0" requires 1')
    assert met.sqlstate == "08P01" and pooled_away(met)
    assert not pooled_away(psycopg.errors.ProtocolViolation("invalid message format"))
    assert pooled_away(psycopg.errors.InvalidSqlStatementName("prepared statement missing"))
