"""SQLite backend: one file in WAL mode, the embedded default.

Every connection runs with `synchronous=FULL`, so a committed transaction is on disk; the runtime
amortises that fsync by group-committing many runs' events in one transaction (`write_batch`).
Connections are per thread: the runtime's committer thread writes while readers keep reading
(WAL lets readers proceed during a write). The `Tx` that each write op receives lives in
`_sqlite_tx.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._artifact_refs import ARTIFACT_RENEW_S, SQLITE_FIND, mentioned
from ._codec import decoded_events, loads
from ._migrations import LATEST_VERSION, MIGRATIONS
from ._records import Event, RunRecord, Signal
from ._rows import (
    _RUN_COLUMNS,
    _finished_roots_query,
    _run_from_row,
    listed_columns,
    listed_run_from_row,
)
from ._sqlite_tx import _SQLiteTx
from .errors import (
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreUnavailable,
)

T = TypeVar("T")
_LISTED = listed_columns("length")


class SQLiteStore:
    """The embedded store. `path` is created (with its directory) if missing, unless
    `must_exist` (read-only uses: a mistyped path must not become an empty database)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0,
                 must_exist: bool = False) -> None:
        self.path = str(path)
        if must_exist and not os.path.isfile(self.path):
            raise StoreMissing(self.path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        _create_private(self.path)
        self._migrate()

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _conn_nowait(self) -> sqlite3.Connection:
        """This thread's connection for `write_batch(wait=False)`: busy timeout 0, so taking the
        write lock fails at once instead of waiting (kept apart from the reading connection,
        which must keep waiting)."""
        conn: sqlite3.Connection | None = getattr(self._local, "nowait", None)
        if conn is None:
            conn = self._open()
            conn.execute("PRAGMA busy_timeout=0")
            self._local.nowait = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc
        return conn

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreLocked(self.path, self.busy_timeout)
        if _unavailable(exc):
            return StoreUnavailable(
                f"database {self.path!r}: {text}. Nothing of the write was applied; free "
                "space on its disk (or fix the device) and writes go on")
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return StoreCorrupt(self.path, text)
        return StoreError(f"database {self.path!r}: {text}")

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            if self._schema_is_current(conn):
                return  # no write lock taken: opening never waits behind another's long write
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > LATEST_VERSION:
                conn.execute("ROLLBACK")
                raise SchemaTooNew(self.path, current, LATEST_VERSION)
            for version, sql in MIGRATIONS:
                if version > current:
                    for statement in sql.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (str(version),),
                    )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._translate(exc) from exc

    def _schema_is_current(self, conn: sqlite3.Connection) -> bool:
        """Whether the schema is the latest, read without the write lock (the common case: a
        `tether runs` waited behind a worker's or a prune's write transaction to learn that
        nothing needed migrating). Anything else is decided under the lock, in `_migrate`."""
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            return False  # no meta table yet: a new database
        return row is not None and int(row[0]) == LATEST_VERSION

    def schema_version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    def now(self) -> float:
        """The time leases, timers and timestamps are written and compared in: this host's
        clock, the only one a file on it has (`PostgresStore.now` reads its server's)."""
        return time.time()

    # -- writes ------------------------------------------------------------------------------
    def write(self, op: Callable[[_SQLiteTx], T]) -> T:
        results = self.write_batch([op])
        assert results is not None  # wait=True always answers
        ok, value = results[0]
        if not ok:
            raise value
        return value

    def write_batch(self, ops: Sequence[Callable[[_SQLiteTx], Any]], *,
                    wait: bool = True) -> list[tuple[bool, Any]] | None:
        conn = self._conn() if wait else self._conn_nowait()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not wait and ("locked" in str(exc) or "busy" in str(exc)):
                    return None
                raise
        except sqlite3.Error as exc:
            err = self._translate(exc)
            return [(False, err) for _ in ops]
        tx = _SQLiteTx(conn)
        results: list[tuple[bool, Any]] = []
        # a lone op has nothing to be isolated from: no savepoint (the common case of one run
        # stepping alone, one op per commit); if it fails, the whole transaction is rolled back
        isolate = len(ops) > 1
        try:
            for op in ops:
                if isolate:
                    conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op(tx)))
                except Exception as exc:
                    if isinstance(exc, sqlite3.Error) and _unavailable(exc):
                        raise  # not this op's fault: the whole batch is refused (below)
                    failed = (StoreError(f"conflicting write: {exc}")
                              if isinstance(exc, sqlite3.IntegrityError) else exc)
                    if not isolate:
                        conn.execute("ROLLBACK")
                        return [(False, failed)]
                    conn.execute("ROLLBACK TO op")
                    tx._fenced.clear()  # a lease granted or released inside it is undone too
                    results.append((False, failed))
                if isolate:
                    conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a full disk may refuse it too
                    conn.execute("ROLLBACK")
            err = self._translate(exc)
            return [(False, err) for _ in ops]
        return results

    # -- reads -------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
        return _run_from_row(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        tenant: str | None = None,
        parent_id: str | None = None,
        agent: str | None = None,
        flagged: bool = False,
        limit: int = 100,
    ) -> list[RunRecord]:
        clauses: list[str] = ["length(flags) > 2"] if flagged else []  # more than `[]`
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if tenant is not None:
            clauses.append("tenant=?")
            params.append(tenant)
        if parent_id is not None:
            clauses.append("parent_id=?")
            params.append(parent_id)
        if agent is not None:
            clauses.append("agent=?")
            params.append(agent)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT {_LISTED} FROM runs {where} ORDER BY created_at DESC LIMIT ?",
            (*params, limit),
        )
        return [listed_run_from_row(r) for r in rows]

    def finished_roots(self, *, before: float, after: tuple[float, str] | None = None,
                       tenant: str | None = None, statuses: Collection[str] = (),
                       limit: int = 100) -> list[tuple[str, float]]:
        sql, params = _finished_roots_query(before, after, tenant, statuses, limit, "?")
        return [(r[0], r[1]) for r in self._query(sql, params)]

    def load_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        rows = self._query(
            "SELECT seq, kind, key, name, data, ts FROM events WHERE run_id=? AND seq>? "
            "ORDER BY seq",
            (run_id, after_seq),
        )
        return decoded_events(run_id, rows, self.path)

    def run_ids_with_prefix(self, prefix: str, limit: int = 10, *,
                            outermost: bool = False) -> list[str]:
        """Run ids starting with `prefix`, sorted (a range scan of the primary key: no LIKE, so
        `%` and `_` in a prefix are plain characters)."""
        nested = " AND instr(substr(id, ?), '.') = 0" if outermost else ""
        params: tuple[object, ...] = (prefix, prefix + "\U0010ffff", len(prefix), prefix)
        if outermost:
            params += (len(prefix) + 1,)
        rows = self._query("SELECT id FROM runs WHERE id >= ? AND id < ? AND substr(id, 1, ?) = ?"
                           f"{nested} ORDER BY id LIMIT ?", (*params, limit))
        return [r[0] for r in rows]

    def leases(self, run_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The current lease (owner, expires_at) of each of `run_ids` that has one."""
        if not run_ids:
            return {}
        rows = self._query(
            f"SELECT run_id, owner, expires_at FROM leases WHERE run_id IN "
            f"({','.join('?' * len(run_ids))})", tuple(run_ids))
        return {r[0]: (r[1], r[2]) for r in rows}

    def spans_exported(self, run_ids: Sequence[str]) -> dict[str, int]:
        if not run_ids:
            return {}
        rows = self._query(
            f"SELECT run_id, seq FROM span_exports WHERE run_id IN "
            f"({','.join('?' * len(run_ids))})", tuple(run_ids))
        return {r[0]: int(r[1]) for r in rows}

    def count_runs(self, *, tenant: str | None = None) -> dict[str, int]:
        where, params = ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
        return {str(status): int(n) for status, n in self._query(
            f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params)}

    def count_events(self, run_id: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM events WHERE run_id=?", (run_id,))[0][0])

    def pending_signals(self, run_id: str) -> list[Signal]:
        rows = self._query(
            "SELECT id, name, payload, created_at FROM signals WHERE run_id=? AND "
            "consumed_by IS NULL ORDER BY id",
            (run_id,),
        )
        return [Signal(r[0], run_id, r[1], loads(r[2]), r[3]) for r in rows]

    def runs_with_pending_signals(self, prefix: str) -> list[str]:
        rows = self._query("SELECT DISTINCT run_id FROM signals WHERE consumed_by IS NULL AND "
                           "substr(name, 1, ?) = ?", (len(prefix), prefix))
        return sorted(r[0] for r in rows)

    def next_wake_time(self) -> float | None:
        rows = self._query("SELECT MIN(wake_at) FROM runs WHERE status='waiting'")
        return rows[0][0] if rows else None

    def descendants(self, run_id: str) -> list[RunRecord]:
        return _SQLiteTx(self._conn()).descendants(run_id)

    def get_usage(self, tenant: str, day: str) -> dict[str, float]:
        rows = self._query("SELECT metric, amount FROM usage WHERE tenant=? AND day=?",
                           (tenant, day))
        return {r[0]: r[1] for r in rows}

    def get_budget_spend(self, scope: str) -> dict[str, float]:
        """What a budget scope (a run and its descendants) has reserved, per metric."""
        rows = self._query("SELECT metric, amount FROM budget_spend WHERE scope=?", (scope,))
        return {r[0]: r[1] for r in rows}

    def put_artifact(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        stored = self._query("SELECT created_at FROM artifacts WHERE digest=?", (digest,))
        if not stored or stored[0][0] < self.now() - ARTIFACT_RENEW_S:
            self.write(lambda tx: tx.put_artifact(digest, data))  # new, or its time renewed
        return digest

    def get_artifact(self, digest: str) -> bytes:
        rows = self._query("SELECT data FROM artifacts WHERE digest=?", (digest,))
        if not rows:
            raise KeyError(f"no artifact with digest {digest!r} in {self.path!r}")
        data = bytes(rows[0][0])
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreCorrupt(self.path, f"artifact {digest} does not match its digest")
        return data

    def artifacts_before(self, created_before: float) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT digest FROM artifacts WHERE created_at < ?", (created_before,))]

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        return mentioned(self._query, digests, since=since, find=SQLITE_FIND)

    def has_artifact(self, digest: str) -> bool:
        return bool(self._query("SELECT 1 FROM artifacts WHERE digest=?", (digest,)))

    def backup(self, dest: str | os.PathLike[str]) -> int:
        """Copy the database, consistent as of one moment, to the new file `dest` (private,
        0600), while runs go on writing; returns its size in bytes. Why not `cp`: a copy of
        the file taken while a worker commits may miss the WAL's latest frames or tear a page
        — SQLite's backup reads one snapshot. Written to a temporary file next to `dest` and
        checked (`integrity_check`) before it takes `dest`'s name: a failed backup leaves no
        file that looks like one."""
        target = Path(dest)
        if target.exists():
            raise StoreError(f"backup target {str(target)!r} exists; give a new file name "
                             "(a backup never overwrites)")
        if not target.parent.is_dir():
            raise StoreError(f"backup target folder {str(target.parent)!r} does not exist")
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        _create_private(str(partial))
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                self._conn().backup(copy)
                problems = [r[0] for r in copy.execute("PRAGMA integrity_check") if r[0] != "ok"]
            finally:
                copy.close()
            if problems:
                raise StoreError(f"the backup did not check out ({'; '.join(problems[:5])}); "
                                 "nothing was written to the target")
            try:
                os.link(partial, target)  # never onto a file made meanwhile (os.replace would)
            except FileExistsError:
                raise StoreError(f"backup target {str(target)!r} appeared meanwhile; nothing "
                                 "was overwritten") from None
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        return target.stat().st_size

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's own check; an empty list means the file is sound."""
        rows = self._query("PRAGMA integrity_check")
        problems = [r[0] for r in rows if r[0] != "ok"]
        return problems

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


#: SQLite's primary result codes that say the disk, not the write, is at fault (full, I/O)
_UNAVAILABLE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (0600), unless it exists. Why:
    the journal holds what tools returned and models said — personal data before masking
    included — and a file made with the usual umask (0644) let every local user read it.
    SQLite gives the -wal and -shm files the database file's permissions. An existing file
    is left as it is (`tether doctor` warns). Its folder keeps the usual mode: `.tether/`
    also holds what other users' processes must reach (a PostgreSQL data directory there
    is run by the `postgres` user)."""
    if path == ":memory:" or path.startswith("file:"):
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _unavailable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _UNAVAILABLE_CODES
