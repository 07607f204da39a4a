"""Opening a PostgreSQL store: its URL checked and redacted, the pool of sessions and their
settings, and the schema brought up to date. Apart from `_postgres.py`, which reads and writes
through what this opens."""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ._postgres_prepare import Preparing
from .errors import SchemaTooNew, StoreError, StoreMissing, StoreUnavailable

log = logging.getLogger("tether.store")
# advisory lock key held while migrating, so workers starting together migrate once
_MIGRATE_LOCK = 0x7E7E_0018


def redact(url: str) -> str:
    """The URL without its password (for messages and `store.url`); everything else, the
    search_path option included, stays so the URL still names the same store."""
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1@", url)


#: every connection's options (`write_batch` opens the transactions)
SESSION_KWARGS: dict[str, Any] = {"autocommit": True}
#: what the server answers when a transaction pooler sits in between and psycopg's prepared
#: statements (made after a statement ran 5 times) were made on another server session:
#: "prepared statement ... already exists" (42P05), "... does not exist" (26000)
POOLED_AWAY = frozenset({"42P05", "26000"})


def pooled_away(exc: BaseException) -> bool:
    """`exc` says a prepared statement went missing or doubled: a transaction pooler (PgBouncer
    in transaction mode, as managed PostgreSQL services put in front) handed this client's
    transactions to different server sessions. The statement failed before anything was
    applied, so the same transaction can run again without prepared statements."""
    if not isinstance(exc, psycopg.Error):
        return False
    # 08P01 "bind message supplies 7 parameters, but prepared statement "_pg3_0" requires 1":
    # this client's statement name met another client's statement on that server session
    # (seen behind PgBouncer 1.18 under four workers; the run failed with it)
    return (exc.sqlstate or "") in POOLED_AWAY or (
        exc.sqlstate == "08P01" and "prepared statement" in str(exc))


#: how long a session may sit idle inside a transaction (a stalled worker) before the server
#: ends it, unless the database or the URL sets another value
IDLE_IN_TRANSACTION = "45s"


def session_settings(conn: psycopg.Connection[Any], preparing: Preparing) -> None:
    """Settings of every pooled session, and whether it prepares statements (`Preparing`:
    not behind a pooler, unless the URL says so). `jit=off`: the journal's statements are
    short, and a fresh table's missing statistics (a backlog just submitted, before autovacuum
    analyzes it) make the planner estimate millions of rows for some of them — over
    `jit_above_cost`, so each execution JIT-compiled for ~10-18 ms what runs in 0.05 ms. A
    worker draining 10,000 queued runs executed ~125 runs/s until the analyze, then ~600/s
    (tests/store/test_postgres.py holds the setting)."""
    conn.execute("SET jit = off")  # behind a transaction pooler it may not hold (scaling.md)
    # A Tether transaction never waits on its client: one idle in it for long is a worker
    # stalled (SIGSTOP, a paused VM, a host cut off without a FIN) holding its runs' row
    # locks, which every other worker's claim skips (SKIP LOCKED) after the lease expired.
    # Ended, its batch is refused (LeaseLost, or an unknown outcome) and the runs are taken
    # over. Above the default lease TTL (30 s); a value the database or the URL sets wins
    # (behind a pooler, set it for the database: `ALTER DATABASE ... SET ...`).
    row = conn.execute("SELECT current_setting('idle_in_transaction_session_timeout'), "
                       "pg_backend_pid()").fetchone()
    assert row is not None
    if str(row[0]) in ("0", "0ms"):
        conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
    preparing.session(conn, int(row[1]))  # before any statement of the store's


def open_pool(url: str, *, min_size: int, max_size: int, busy_timeout: float,
              preparing: Preparing) -> tuple[str, ConnectionPool[Any]]:
    """The conninfo of `url` (without Tether's own `prepare_threshold`, `take_setting`) and an
    open pool of autocommit sessions (`write_batch` opens the transactions). A wrong host,
    port, user or database is one clear error at once, from one plain connection first, not a
    pool retrying (and logging) until its timeout."""
    shown = redact(url)
    try:
        conninfo = make_conninfo(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"invalid PostgreSQL URL {shown!r}: {exc}") from exc
    timeout = min(busy_timeout, 10.0)
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, int(timeout))).close()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(
            f"cannot connect to PostgreSQL at {shown!r} ({reason}). Is the server running "
            "and the URL right (host, port, user, database)? `make postgres` starts a "
            "local one for development.") from exc
    pool: ConnectionPool[Any] = ConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, open=False, name="tether-store",
        kwargs=dict(SESSION_KWARGS), timeout=busy_timeout,
        configure=lambda conn: session_settings(conn, preparing))
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout as exc:
        pool.close()
        raise StoreError(
            f"cannot connect to PostgreSQL at {shown!r}: no connection within "
            f"{timeout:.0f}s. Is the server running and the URL right "
            "(host, port, user, database)? `make postgres` starts a local one.") from exc
    return conninfo, pool


def migrate(pool: ConnectionPool[Any], url: str, migrations: list[tuple[int, list[str]]], *,
            latest: int, must_exist: bool) -> None:
    """Bring the schema named by the sessions' search_path up to `latest`, under an advisory
    lock (workers starting together migrate once). `must_exist`: refuse a database whose
    Tether schema was never created (StoreMissing) instead of creating it.

    A pooled session found dead (the server restarted while the pool was opening: a worker
    started then exited with psycopg's traceback) is replaced and the whole check made again:
    it is one transaction, and it reads the schema's version before changing anything."""
    tries = pool.max_size + 1
    for attempt in range(1, tries + 1):
        try:
            _migrate_once(pool, url, migrations, latest=latest, must_exist=must_exist)
            return
        except psycopg.OperationalError as exc:
            if exc.sqlstate is not None and not exc.sqlstate.startswith(("08", "57P")):
                raise  # the server answered (a timeout, a full disk): not a lost session
            if attempt < tries:
                continue
            raise StoreUnavailable(
                f"database {url!r}: the connection was lost while checking the schema ({exc}); "
                "nothing was changed. Is the server restarting? Try again once it is up."
            ) from exc
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"database {url!r}: no connection to check the schema on ({exc}); nothing was "
                "changed. Is the server up and accepting connections?") from exc


def _migrate_once(pool: ConnectionPool[Any], url: str,
                  migrations: list[tuple[int, list[str]]], *, latest: int,
                  must_exist: bool) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if not (exists and exists[0]):
            if must_exist:
                raise StoreMissing(url)
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > latest:
            raise SchemaTooNew(url, current, latest)
        for version, statements in migrations:
            if version > current:
                for statement in statements:
                    conn.execute(statement.encode())  # DDL text, never user input
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(version),))
