"""PostgreSQL backend: one database shared by workers on many hosts (`postgresql://...` URLs).

Connections come from a `psycopg_pool` pool (autocommit; `write_batch` opens the transaction), so
the runtime's committer thread and any number of reader threads share a few server sessions.
Durability is the server's: with PostgreSQL's default `synchronous_commit=on` a committed batch
is flushed to the WAL, the same promise as SQLite's `synchronous=FULL`, and group commit
amortises it the same way (many runs' events in one transaction). The schema is the shared list
of migrations translated by `_postgres_schema`; it lives in the schema named by the URL's
search_path (default `public`), so one database can hold several independent Tether stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import PoolTimeout

from ._artifact_refs import ARTIFACT_RENEW_S, POSTGRES_FIND, mentioned
from ._codec import decoded_events, loads
from ._migrations import MIGRATIONS as _SHARED_MIGRATIONS
from ._postgres_clock import ServerClock
from ._postgres_connect import migrate, open_pool, pooled_away, redact
from ._postgres_errors import _RETRIES, _RETRYABLE, _Failed, _Reconnect, _unavailable
from ._postgres_listen import listen
from ._postgres_prepare import Preparing, Setting, take_setting
from ._postgres_schema import postgres_migrations
from ._postgres_tx import _bytes, _PostgresTx, run_from_pg_row
from ._records import Event, RunRecord, Signal
from ._rows import (
    _RUN_COLUMNS,
    _finished_roots_query,
    listed_columns,
    listed_run_from_row,
)
from .errors import (
    StoreCorrupt,
    StoreError,
    StoreOutcomeUnknown,
    StoreUnavailable,
)

T = TypeVar("T")

_LISTED = listed_columns("octet_length")


class PostgresStore:
    """A Tether database on a PostgreSQL server. `must_exist`: refuse (StoreMissing) a database
    whose Tether schema was never created, instead of creating it (read-only uses).
    `prepare_threshold`: "auto" prepares statements unless a connection pooler is in between
    (`Preparing`), a number prepares after that many executions even then, None never; a
    `prepare_threshold=` parameter in the URL wins (the deployment's word)."""

    def __init__(self, url: str, *, must_exist: bool = False, min_size: int = 1,
                 max_size: int = 8, busy_timeout: float = 30.0,
                 migrations: list[tuple[int, str]] | None = None,
                 prepare_threshold: Setting = "auto") -> None:
        self.url = redact(url)
        self.path = self.url  # what messages name (SQLiteStore's file path)
        self.busy_timeout = busy_timeout
        bare, setting = take_setting(url, prepare_threshold)
        self._preparing = Preparing(setting, self.url)
        self._conninfo, self._pool = open_pool(bare, min_size=min_size, max_size=max_size,
                                               busy_timeout=busy_timeout,
                                               preparing=self._preparing)
        self._clock = ServerClock()  # `now`
        shared = _SHARED_MIGRATIONS if migrations is None else migrations
        self._latest = shared[-1][0]
        try:
            migrate(self._pool, self.url, postgres_migrations(shared), latest=self._latest,
                    must_exist=must_exist)
            schema = self._query("SELECT current_schema()")[0][0]
            self._read(self._clock.read)
        except BaseException:
            self._pool.close()
            raise
        # notifications reach every session of the database: one channel per store (schema)
        self._channel = f"tether_runnable_{schema}"[:63]

    @property
    def prepares(self) -> bool:
        """Whether psycopg may prepare statements (not behind a pooler, `Preparing`)."""
        return self._preparing.on

    def now(self) -> float:
        """The time by the server's clock, without asking it (`ServerClock`)."""
        return self._clock.now()

    def clock_offset(self) -> float:
        """The server's clock minus this host's, in seconds, measured now (`tether doctor`)."""
        self._read(self._clock.read)
        return self._clock.offset

    def schema_version(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE key='schema_version'")[0][0])

    # -- writes --------------------------------------------------------------------------------
    def write(self, op: Callable[[_PostgresTx], T]) -> T:
        results = self.write_batch([op])
        assert results is not None  # wait=True always answers
        ok, value = results[0]
        if not ok:
            raise value
        return value

    def write_batch(self, ops: Sequence[Callable[[_PostgresTx], Any]], *,
                    wait: bool = True) -> list[tuple[bool, Any]] | None:
        """Group commit. A batch first runs pipelined with no savepoints (each costs two round
        trips); if any op fails it is rolled back and run again op by op, each in a savepoint,
        so the results are those of SQLite's store. PostgreSQL has no database-wide write lock:
        `wait=False` gives way when a row this batch needs is locked by another transaction
        (lock_timeout) or no pooled connection is free, returning None with nothing applied."""
        isolate = False
        lost_races = dead_found = pooled = 0
        while lost_races < _RETRIES:
            try:
                if len(ops) > 1 and not isolate:
                    try:
                        return self._write_once(ops, wait=wait, isolate=False)
                    except (_Failed, psycopg.IntegrityError, psycopg.DataError):
                        isolate = True  # an op failed: again, each op in a savepoint
                return self._write_once(ops, wait=wait, isolate=isolate)
            except _RETRYABLE:
                if not wait:
                    return None
                time.sleep(random.uniform(0, 0.01 * 2 ** lost_races))
                lost_races += 1
            except pg_errors.LockNotAvailable:
                if not wait:
                    return None
                raise
            except _Reconnect as dead:
                # each try takes another pooled connection (a restart closed them all)
                dead_found += 1
                if dead_found > self._pool.max_size:
                    gone = StoreUnavailable(f"database {self.url!r}: {dead.error} (every "
                                            "connection tried was closed before the write's "
                                            "COMMIT: nothing was applied)")
                    return [(False, gone) for _ in ops]
            except _Failed as failed:
                return [(False, failed.error)]
            except StoreOutcomeUnknown as unknown:
                return [(False, unknown) for _ in ops]
            except PoolTimeout:
                if not wait:
                    return None
                err: StoreError = self._pool_exhausted()
                return [(False, err) for _ in ops]
            except psycopg.Error as exc:
                if pooled_away(exc) and pooled < self._pool.max_size:
                    # nothing was applied: the same batch again, unprepared (a connection that
                    # prepared before another one found out fails once more, at most)
                    pooled += 1
                    self._preparing.stop(exc)
                    continue
                err = self._translate(exc)
                return [(False, err) for _ in ops]
        err = StoreError(f"database {self.url!r}: the batch kept losing lock races "
                         f"({_RETRIES} deadlocks in a row); try again")
        return [(False, err) for _ in ops]

    def _write_once(self, ops: Sequence[Callable[[_PostgresTx], Any]], *, wait: bool,
                    isolate: bool) -> list[tuple[bool, Any]]:
        given: list[psycopg.Connection[Any]] = []
        try:
            return self._write_on(ops, wait=wait, isolate=isolate, given=given)
        except psycopg.OperationalError as exc:
            if given and given[0].broken:
                if not given[1:]:
                    raise _Reconnect(exc) from exc  # dead before its COMMIT was sent
                raise StoreOutcomeUnknown(
                    f"database {self.url!r}: the connection was lost after the COMMIT was sent "
                    f"({exc}); the write may or may not have been applied") from exc
            raise

    def _write_on(self, ops: Sequence[Callable[[_PostgresTx], Any]], *, wait: bool,
                  isolate: bool, given: list[Any]) -> list[tuple[bool, Any]]:
        """`_write_once`'s transaction; `given` gets the connection, and a second entry once
        every op ran (from then on the COMMIT may have reached the server)."""
        with self._pool.connection(timeout=None if wait else 0.05) as conn, \
                contextlib.ExitStack() as stack:
            given.append(conn)
            self._preparing.take(conn)
            if self._clock.stale():
                self._clock.read(conn)
            results: list[tuple[bool, Any]] = []
            if not isolate and len(ops) > 1:
                # pipelined: statements whose result nobody reads go out without a round trip
                # each; an error may then surface in a later op, so any failure sends the batch
                # back to be run op by op, each in a savepoint (write_batch)
                stack.enter_context(conn.pipeline())
            with conn.transaction():
                if not wait:
                    conn.execute("SET LOCAL lock_timeout = '20ms'")
                tx = _PostgresTx(conn, now=self.now())
                for op in ops:
                    if not isolate:
                        try:
                            results.append((True, op(tx)))
                        except psycopg.IntegrityError as exc:
                            # psycopg rolls the transaction back on the way out
                            raise _Failed(StoreError(f"conflicting write: {exc}")) from exc
                        except (psycopg.errors.OperationalError, *_RETRYABLE):
                            raise
                        except Exception as exc:
                            if pooled_away(exc):
                                raise  # not the op's failure: write_batch runs it again
                            raise _Failed(exc) from exc
                        continue
                    try:
                        with conn.transaction():  # a savepoint: a failing op is undone alone
                            results.append((True, op(tx)))
                    except (*_RETRYABLE, pg_errors.LockNotAvailable):
                        raise
                    except psycopg.IntegrityError as exc:
                        tx._fenced.clear()
                        results.append((False, StoreError(f"conflicting write: {exc}")))
                    except Exception as exc:
                        if conn.broken or pooled_away(exc) or (
                                isinstance(exc, psycopg.Error) and _unavailable(exc)):
                            raise  # not this op's fault: the whole batch is refused
                        tx._fenced.clear()  # locks taken inside the savepoint are gone
                        results.append((False, exc))
                if tx.wake_workers:  # delivered at commit, once per transaction
                    conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(self._channel)))
                given.append(None)  # the COMMIT is sent next
            return results

    # -- wake-ups ------------------------------------------------------------------------------
    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback`, from a thread of its own, soon after any transaction on this store,
        from any process or host, made a run runnable (submitted, signalled, woken by a child,
        resolved, handed back) or set a run's timer: a worker looks for work then, and sleeps
        until the earliest timer or lease expiry (`Tx.next_wake`) instead of polling. Returns
        the function that stops listening. A lost connection ends the listening silently: the
        worker's safety poll remains."""
        return listen(self._conninfo, self._channel, callback)

    # -- reads ---------------------------------------------------------------------------------
    def _query(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._read(lambda conn: conn.execute(query.encode(), params).fetchall())

    def _read(self, read: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`read` on a pooled connection; again on another one when the first turns out dead
        (a server restart closes every pooled connection: a read is safe to repeat), with
        psycopg's errors translated to the store's."""
        tries = self._pool.max_size + 1
        for attempt in range(1, tries + 1):
            try:
                with self._pool.connection() as conn:
                    self._preparing.take(conn)
                    try:
                        return read(conn)
                    except psycopg.OperationalError:
                        if attempt < tries and conn.broken:  # a pooled connection found dead
                            continue  # (the pool discards it)
                        raise
            except PoolTimeout as exc:
                raise self._pool_exhausted() from exc
            except psycopg.Error as exc:
                if pooled_away(exc) and attempt < tries:
                    self._preparing.stop(exc)
                    continue
                raise self._translate(exc) from exc
        raise AssertionError("unreachable")

    def _pool_exhausted(self) -> StoreError:
        return StoreUnavailable(
            f"database {self.url!r}: no free connection within {self.busy_timeout:g}s (all "
            f"{self._pool.max_size} of this process's pooled connections stayed busy, or the "
            "server stopped answering); check the server's load and max_connections")

    def _translate(self, exc: psycopg.Error) -> StoreError:
        if isinstance(exc, psycopg.errors.DataCorrupted):
            return StoreCorrupt(self.url, str(exc))
        if _unavailable(exc):
            return StoreUnavailable(f"database {self.url!r}: {exc} (nothing of the write was "
                                    "applied; it can be tried again once the server has room)")
        return StoreError(f"database {self.url!r}: {exc}")

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=%s", (run_id,))
        return run_from_pg_row(rows[0]) if rows else None

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
        clauses: list[str] = ["octet_length(flags) > 2"] if flagged else []  # more than `[]`
        params: list[Any] = []
        if status is not None:
            clauses.append("status = ANY(%s)")
            params.append([status] if isinstance(status, str) else list(status))
        if tenant is not None:
            clauses.append("tenant=%s")
            params.append(tenant)
        if parent_id is not None:
            clauses.append("parent_id=%s")
            params.append(parent_id)
        if agent is not None:
            clauses.append("agent=%s")
            params.append(agent)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT {_LISTED} FROM runs {where} ORDER BY created_at DESC LIMIT %s",
            (*params, limit),
        )
        return [listed_run_from_row([_bytes(v) for v in r]) for r in rows]

    def finished_roots(self, *, before: float, after: tuple[float, str] | None = None,
                       tenant: str | None = None, statuses: Collection[str] = (),
                       limit: int = 100) -> list[tuple[str, float]]:
        sql, params = _finished_roots_query(before, after, tenant, statuses, limit, "%s")
        return [(r[0], r[1]) for r in self._query(sql, params)]

    def load_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        rows = self._query(
            "SELECT seq, kind, key, name, data, ts FROM events WHERE run_id=%s AND seq>%s "
            "ORDER BY seq", (run_id, after_seq))
        return decoded_events(run_id, rows, self.url, _bytes)

    def run_ids_with_prefix(self, prefix: str, limit: int = 10, *,
                            outermost: bool = False) -> list[str]:
        """Run ids starting with `prefix`, sorted by code point as SQLite sorts them (no LIKE:
        `%` and `_` in a prefix are plain characters). `outermost`: no `.` after the prefix."""
        nested = " AND strpos(substr(id, %s), '.') = 0" if outermost else ""
        params: tuple[object, ...] = (len(prefix), prefix)
        if outermost:
            params += (len(prefix) + 1,)
        rows = self._query(
            f"SELECT id FROM runs WHERE left(id, %s) = %s{nested} ORDER BY id COLLATE \"C\" "
            "LIMIT %s", (*params, limit))
        return [r[0] for r in rows]

    def leases(self, run_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        if not run_ids:
            return {}
        rows = self._query("SELECT run_id, owner, expires_at FROM leases WHERE run_id = ANY(%s)",
                           (list(run_ids),))
        return {r[0]: (r[1], r[2]) for r in rows}

    def spans_exported(self, run_ids: Sequence[str]) -> dict[str, int]:
        if not run_ids:
            return {}
        rows = self._query("SELECT run_id, seq FROM span_exports WHERE run_id = ANY(%s)",
                           (list(run_ids),))
        return {r[0]: int(r[1]) for r in rows}

    def count_runs(self, *, tenant: str | None = None) -> dict[str, int]:
        where, params = ("WHERE tenant=%s", (tenant,)) if tenant is not None else ("", ())
        return {str(status): int(n) for status, n in self._query(
            f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status", params)}

    def count_events(self, run_id: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM events WHERE run_id=%s", (run_id,))[0][0])

    def pending_signals(self, run_id: str) -> list[Signal]:
        rows = self._query(
            "SELECT id, name, payload, created_at FROM signals WHERE run_id=%s AND "
            "consumed_by IS NULL ORDER BY id", (run_id,))
        return [Signal(r[0], run_id, r[1], loads(_bytes(r[2])), r[3]) for r in rows]

    def runs_with_pending_signals(self, prefix: str) -> list[str]:
        rows = self._query("SELECT DISTINCT run_id FROM signals WHERE consumed_by IS NULL AND "
                           "left(name, %s) = %s", (len(prefix), prefix))
        return sorted(r[0] for r in rows)

    def next_wake_time(self) -> float | None:
        rows = self._query("SELECT MIN(wake_at) FROM runs WHERE status='waiting'")
        return rows[0][0] if rows else None

    def descendants(self, run_id: str) -> list[RunRecord]:
        return self._read(lambda conn: _PostgresTx(conn, now=self.now()).descendants(run_id))

    def get_usage(self, tenant: str, day: str) -> dict[str, float]:
        rows = self._query("SELECT metric, amount FROM usage WHERE tenant=%s AND day=%s",
                           (tenant, day))
        return {r[0]: r[1] for r in rows}

    def get_budget_spend(self, scope: str) -> dict[str, float]:
        rows = self._query("SELECT metric, amount FROM budget_spend WHERE scope=%s", (scope,))
        return {r[0]: r[1] for r in rows}

    def put_artifact(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        stored = self._query("SELECT created_at FROM artifacts WHERE digest=%s", (digest,))
        if not stored or stored[0][0] < self.now() - ARTIFACT_RENEW_S:
            self.write(lambda tx: tx.put_artifact(digest, data))  # new, or its time renewed
        return digest

    def get_artifact(self, digest: str) -> bytes:
        rows = self._query("SELECT data FROM artifacts WHERE digest=%s", (digest,))
        if not rows:
            raise KeyError(f"no artifact with digest {digest!r} in {self.url!r}")
        data = bytes(rows[0][0])
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreCorrupt(self.url, f"artifact {digest} does not match its digest")
        return data

    def artifacts_before(self, created_before: float) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT digest FROM artifacts WHERE created_at < %s", (created_before,))]

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        return mentioned(lambda sql, params: self._query(sql.replace("?", "%s"), params),
                         digests, since=since, find=POSTGRES_FIND)

    def has_artifact(self, digest: str) -> bool:
        return bool(self._query("SELECT 1 FROM artifacts WHERE digest=%s", (digest,)))

    def integrity_check(self) -> list[str]:
        """Problems a reader would trip over: the server checks pages itself (checksums, WAL),
        so this checks Tether's own invariants: the schema version, and journals whose run row
        is missing."""
        problems: list[str] = []
        version = self.schema_version()
        if version != self._latest:
            problems.append(f"schema version {version}, expected {self._latest}")
        orphans = self._query(
            "SELECT DISTINCT e.run_id FROM events e LEFT JOIN runs r ON r.id = e.run_id "
            "WHERE r.id IS NULL LIMIT 10")
        problems.extend(f"events of a missing run {r[0]!r}" for r in orphans)
        return problems

    def close(self) -> None:
        self._pool.close()
