"""The SQLite store: migrations, newer-schema refusal, corrupt and locked files, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tether.runtime import GroupCommitter
from tether.store import (
    LATEST_VERSION,
    NewEvent,
    RunRecord,
    SchemaTooNew,
    SQLiteStore,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    dumps,
    open_store,
)
from tether.store._migrations import MIGRATIONS


def make_run(store: SQLiteStore, run_id: str = "r1") -> None:
    store.write(lambda tx: tx.insert_run(RunRecord(id=run_id, agent="m:f", status="queued",
                                                   input={"n": 1}, root_id=run_id)))


def test_fresh_database_is_migrated_to_latest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    assert store.schema_version() == LATEST_VERSION
    tables = {r[0] for r in store._query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "events", "leases", "artifacts", "signals", "meta"} <= tables
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"


def test_migrations_apply_in_order_from_an_older_version(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    extra = (LATEST_VERSION + 1, "CREATE TABLE extra_probe (x INTEGER)")
    monkeypatch.setattr("tether.store._sqlite.MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr("tether.store._sqlite.LATEST_VERSION", LATEST_VERSION + 1)
    upgraded = SQLiteStore(path)
    assert upgraded.schema_version() == LATEST_VERSION + 1
    assert upgraded._query("SELECT COUNT(*) FROM extra_probe")[0][0] == 0


def test_database_from_a_newer_tether_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match=r"newer Tether \(schema version 99; this Tether "
                       rf"supports up to {LATEST_VERSION}\)"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("99",)
    conn.close()
    assert len(path.read_bytes()) == len(before)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorrupt, match="not a readable Tether database"):
        open_store(path)
    assert path.read_bytes() == b"this is not sqlite at all" * 100


def test_locked_database_reports_who_to_blame(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLocked, match="stayed locked by another process"):
            SQLiteStore(path, busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unsupported_url_scheme(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL scheme 'mysql'"):
        open_store("mysql://x/y")


def test_write_batch_isolates_a_failing_operation(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.db")
    make_run(store)
    ev = NewEvent(1, "log", "1", None, dumps("a"), time.time())

    def bad(tx):  # type: ignore[no-untyped-def]
        tx.append_events("r1", [NewEvent(2, "log", "2", None, None, time.time())])
        raise ValueError("refused")

    results = store.write_batch([
        lambda tx: tx.append_events("r1", [ev]),
        bad,
        lambda tx: tx.append_events("r1", [ev]),  # duplicate seq: a conflicting write
        lambda tx: tx.append_events("r1", [NewEvent(3, "log", "3", None, None, time.time())]),
    ])
    assert [ok for ok, _ in results] == [True, False, False, True]
    assert isinstance(results[1][1], ValueError)
    assert "conflicting write" in str(results[2][1])
    assert [e.seq for e in store.load_events("r1")] == [1, 3]  # bad op left nothing behind


async def test_group_commit_puts_many_writers_in_few_transactions(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    for i in range(200):
        make_run(store, f"r{i}")
    committer = GroupCommitter(store)
    try:
        async def writer(i: int) -> None:
            for seq in range(1, 6):
                ev = NewEvent(seq, "log", str(seq), None, None, time.time())
                await committer.run(lambda tx, ev=ev: tx.append_events(f"r{i}", [ev]))

        await asyncio.gather(*(writer(i) for i in range(200)))
    finally:
        committer.close()
    assert committer.ops == 1000
    assert committer.batches < 200, f"{committer.batches} transactions for 1000 writes"
    assert sum(store.count_events(f"r{i}") for i in range(200)) == 1000
    assert store.integrity_check() == []


def test_artifacts_are_content_addressed_and_verified(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    digest = store.put_artifact(b"col\n1\n")
    assert digest == store.put_artifact(b"col\n1\n")
    assert store.get_artifact(digest) == b"col\n1\n"
    with pytest.raises(KeyError, match="no artifact"):
        store.get_artifact("0" * 64)
    store._conn().execute("UPDATE artifacts SET data=? WHERE digest=?", (b"tampered", digest))
    with pytest.raises(StoreCorrupt, match="does not match its digest"):
        store.get_artifact(digest)


def test_connections_are_per_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    make_run(store)
    seen: list[object] = []

    def read() -> None:
        seen.append(store.get_run("r1"))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(r is not None for r in seen)


def test_v1_database_is_upgraded_with_its_journal_intact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v1.db"
    monkeypatch.setattr("tether.store._sqlite.MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr("tether.store._sqlite.LATEST_VERSION", 1)
    old = SQLiteStore(path)
    assert old.schema_version() == 1
    old._conn().execute(
        "INSERT INTO runs (id, agent, status, root_id, created_at, updated_at) "
        "VALUES ('r1', 'm:f', 'waiting', 'r1', 0, 0)")
    old.write(lambda tx: tx.append_events("r1", [
        NewEvent(i, "log", str(i), None, dumps({"message": "x" * 1000}), float(i))
        for i in range(1, 4)]))
    old.close()
    monkeypatch.undo()
    new = SQLiteStore(path)
    assert new.schema_version() == LATEST_VERSION
    events = new.load_events("r1")
    assert [e.seq for e in events] == [1, 2, 3] and events[0].data == {"message": "x" * 1000}
    run = new.get_run("r1")
    assert run is not None and run.flags == []
    assert new.integrity_check() == []


def test_one_kilobyte_events_stay_inline(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "inline.db")
    make_run(store)
    store.write(lambda tx: tx.append_events("r1", [
        NewEvent(i, "step_completed", str(i), "a", dumps({"content": "y" * 1024}), 0.0)
        for i in range(1, 801)]))
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (tmp_path / "inline.db").stat().st_size
    # spilled to overflow pages, each event would cost a whole 4 KB page on top of its row
    assert size < 800 * 2000, f"{size} bytes for 800 one-kilobyte events"


def test_write_batch_without_waiting_gives_way_to_another_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    make_run(store)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ev = NewEvent(1, "log", "1", None, None, time.time())
    try:
        t0 = time.perf_counter()
        assert store.write_batch([lambda tx: tx.append_events("r1", [ev])], wait=False) is None
        assert time.perf_counter() - t0 < 1.0
    finally:
        other.execute("COMMIT")
        other.close()
    assert store.load_events("r1") == []  # nothing was applied
    # ordinary writes and reads keep waiting for a busy database
    assert store._conn().execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert store.write_batch([lambda tx: tx.append_events("r1", [ev])], wait=False) == [
        (True, None)]
    assert [e.seq for e in store.load_events("r1")] == [1]


def test_a_failing_lone_operation_leaves_nothing_behind(tmp_path: Path) -> None:
    # one op per batch runs without a savepoint: its failure rolls back the whole transaction
    store = SQLiteStore(tmp_path / "l.db")
    make_run(store)

    def bad(tx):  # type: ignore[no-untyped-def]
        tx.append_events("r1", [NewEvent(1, "log", "1", None, None, time.time())])
        raise ValueError("refused")

    ((ok, err),) = store.write_batch([bad])
    assert not ok and isinstance(err, ValueError)
    ev = NewEvent(1, "log", "1", None, None, time.time())
    ((ok, err),) = store.write_batch([lambda tx: tx.append_events("r1", [ev, ev])])
    assert not ok and "conflicting write" in str(err)
    assert store.load_events("r1") == []
    assert store.write_batch([lambda tx: tx.append_events("r1", [ev])]) == [(True, None)]
    assert [e.seq for e in store.load_events("r1")] == [1]
