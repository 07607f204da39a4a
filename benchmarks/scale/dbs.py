"""The databases the scale benchmarks run on: a fresh PostgreSQL database per system on the server
`make postgres` runs (127.0.0.1:55432, or `$TETHER_TEST_PG_URL`'s server), or a fresh SQLite file;
and how many runs are still unfinished there (read directly: the driver must not load a Tether
worker's caches into its own process)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PG = "postgresql://tether@127.0.0.1:55432/tether_test"
UNFINISHED = "SELECT COUNT(*) FROM runs WHERE status NOT IN " \
             "('succeeded', 'failed', 'cancelled', 'halted')"


def pg_url(database: str) -> str:
    """`database` on the benchmark server (libpq URL; its own database, not a schema)."""
    parts = urlsplit(os.environ.get("TETHER_TEST_PG_URL", DEFAULT_PG))
    return urlunsplit(parts._replace(path="/" + database, query=""))


def fresh_pg(database: str) -> str:
    """Drop and create `database` on the benchmark server; its URL."""
    import psycopg

    if not database.replace("_", "").isalnum():
        raise ValueError(f"benchmark database name {database!r}: use letters, digits and _")
    with psycopg.connect(pg_url("postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    return pg_url(database)


def fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return str(path)


def fresh(kind: str, name: str, work: Path) -> str:
    """A fresh database of `kind` ("sqlite" or "postgres") named `name`: its URL or path."""
    if kind == "postgres":
        return fresh_pg(name)
    if kind == "sqlite":
        return fresh_sqlite(work / f"{name}.db")
    raise ValueError(f"unknown store kind {kind!r}: use 'sqlite' or 'postgres'")


def unfinished(url: str) -> int:
    """Runs not yet in a terminal state (queued, running, waiting) at `url`."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute(UNFINISHED).fetchone()
    else:
        conn3 = sqlite3.connect(url, timeout=60)
        try:
            row = conn3.execute(UNFINISHED).fetchone()
        finally:
            conn3.close()
    assert row is not None
    return int(row[0])
