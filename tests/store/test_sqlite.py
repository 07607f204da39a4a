"""What only the SQLite store does: WAL, a newer schema refused with the file untouched, corrupt
and locked files, inline events, giving way to another process's write lock. What every backend
does (migrations, group commit, artifacts, claims) is in test_store.py, run on both backends."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

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


def make_run(store: SQLiteStore, run_id: str = "r1") -> None:
    store.write(lambda tx: tx.insert_run(RunRecord(id=run_id, agent="m:f", status="queued",
                                                   input={"n": 1}, root_id=run_id)))


def test_fresh_database_is_migrated_to_latest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    assert store.schema_version() == LATEST_VERSION
    tables = {r[0] for r in store._query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "events", "leases", "artifacts", "signals", "meta"} <= tables
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"


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
    store = SQLiteStore(path, busy_timeout=0.2)
    try:
        with pytest.raises(StoreLocked, match="stayed locked by another process"):
            make_run(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_opening_and_reading_never_wait_for_another_writer(tmp_path: Path) -> None:
    """`tether runs` waited out another process's write transaction (a prune, a backup, a
    worker's batch) at opening, to learn that the schema needed nothing."""
    path = tmp_path / "busy.db"
    first = SQLiteStore(path)
    make_run(first)
    first.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE runs SET status='running'")  # uncommitted: readers see 'queued'
    try:
        t0 = time.monotonic()
        store = SQLiteStore(path, busy_timeout=5.0, must_exist=True)
        try:
            assert [r.status for r in store.list_runs(limit=5)] == ["queued"]
        finally:
            store.close()
        assert time.monotonic() - t0 < 2.0  # not the busy timeout
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_behind_the_current_schema_is_still_migrated(tmp_path: Path) -> None:
    from tether.store._migrations import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)  # as the release before this one left it
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for version, sql in MIGRATIONS:
        if version < LATEST_VERSION:
            conn.executescript(sql)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(LATEST_VERSION - 1),))
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == LATEST_VERSION
    finally:
        store.close()


def test_unsupported_url_scheme(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL scheme 'mysql'"):
        open_store("mysql://x/y")


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


def test_a_new_database_is_private_to_its_owner(tmp_path: Path) -> None:
    """The journal holds what tools returned and models said; made with the usual umask it
    was 0644, readable by every local user."""
    import os
    import stat

    db = tmp_path / "made" / "here.db"
    store = SQLiteStore(db)
    try:
        store.write(lambda tx: tx.insert_run(RunRecord(
            id="r1", agent="m:f", status="queued", input={"card": "4111 1111 1111 1111"},
            root_id="r1")))
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in files}
        assert modes == dict.fromkeys(modes, 0o600), modes
    finally:
        store.close()


def test_an_existing_database_keeps_its_permissions(tmp_path: Path) -> None:
    """Shared on purpose (a group of users, a worker running as another user): not ours to
    tighten; `tether doctor` says so instead (tests/cli/test_doctor_store.py)."""
    import os
    import stat

    db = tmp_path / "shared.db"
    SQLiteStore(db).close()
    os.chmod(db, 0o660)
    SQLiteStore(db).close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o660


def test_a_backup_taken_while_a_writer_commits_is_one_consistent_moment(tmp_path: Path) -> None:
    """Every copy is a database that checks out and holds each run with all its events (a
    run's events commit together): no run half there, whatever the writer was doing."""
    import os
    import stat
    import threading

    db = tmp_path / "live.db"
    store = SQLiteStore(db)
    stop = threading.Event()

    def writer() -> None:
        other = SQLiteStore(db)
        i = 0
        try:
            while not stop.is_set():
                run_id = f"w{i}"

                def op(tx: Any, run_id: str = run_id) -> None:
                    tx.insert_run(RunRecord(id=run_id, agent="m:f", status="queued",
                                            input={"pad": "p" * 2000}, root_id=run_id))
                    tx.append_events(run_id, [
                        NewEvent(seq=j + 1, kind="log", key=f"k{j}", name=None,
                                 data=dumps({"j": j}), ts=time.time()) for j in range(5)])
                other.write(op)
                i += 1
        finally:
            other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = []
        for n in range(5):
            time.sleep(0.05)
            target = tmp_path / f"copy{n}.db"
            assert store.backup(target) == target.stat().st_size > 0
            copies.append(target)
    finally:
        stop.set()
        thread.join()
        store.close()
    sizes = []
    for target in copies:
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
        copy = SQLiteStore(target)
        try:
            assert copy.integrity_check() == []
            runs = copy.list_runs(limit=100_000)
            assert runs and all(copy.count_events(r.id) == 5 for r in runs)
            sizes.append(len(runs))
        finally:
            copy.close()
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]  # taken while it grew
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_a_backup_never_overwrites_and_leaves_nothing_when_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "live.db")
    try:
        make_run(store)
        target = tmp_path / "keep.db"
        target.write_text("precious")
        with pytest.raises(StoreError, match="exists; give a new file name"):
            store.backup(target)
        assert target.read_text() == "precious"
        with pytest.raises(StoreError, match=r"folder .* does not exist"):
            store.backup(tmp_path / "nowhere" / "b.db")
        assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []
    finally:
        store.close()
