"""Finding (or starting) the PostgreSQL server the tests use, and one fresh schema per test.

The server is the one `make postgres` (mk/postgres.mk) runs: `$TETHER_TEST_PG_URL`, or the
fragment's default URL. When nothing answers there and the variable is unset, the first test that
needs it runs `make postgres` itself, so a bare `pytest` works for a developer too. Every store a
test opens lives in a schema of its own (search_path in the URL), dropped afterwards: tests never
see each other's rows and need no database of their own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_URL = "postgresql://tether@127.0.0.1:55432/tether_test"
_started: list[str] = []


def _reachable(url: str) -> str | None:
    """None if a session can be opened at `url`, else why not."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def server_url() -> str:
    """The test server's URL, starting it with `make postgres` when it is ours and down."""
    if _started:
        return _started[0]
    url = os.environ.get("TETHER_TEST_PG_URL") or DEFAULT_URL
    why = _reachable(url)
    if why is not None and "TETHER_TEST_PG_URL" not in os.environ:
        done = subprocess.run(["make", "-s", "postgres"], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"`make postgres` failed ({done.returncode}): "
                        f"{(done.stderr or done.stdout)[-2000:]}", pytrace=False)
        why = _reachable(url)
    if why is not None:
        pytest.fail(f"no PostgreSQL server for the store tests at {url} ({why}); run "
                    "`make postgres` or set TETHER_TEST_PG_URL", pytrace=False)
    _started.append(url)
    return url


def with_schema(url: str, schema: str) -> str:
    """`url` with its sessions' search_path set to `schema` (libpq `options`)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


class PgSchema:
    """A schema created for one test and dropped with everything in it afterwards."""

    def __init__(self) -> None:
        self.server = server_url()
        self.name = f"t_{uuid.uuid4().hex[:16]}"
        self.url = with_schema(self.server, self.name)
        self.execute(f"CREATE SCHEMA {self.name}")

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run `sql` in this schema on a connection of its own (a test's back door)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []

    def drop(self) -> None:
        """Drop the schema; one a leaked connection still locks is left behind (named t_*)."""
        import psycopg

        with contextlib.suppress(psycopg.errors.LockNotAvailable):
            self.execute(f"SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {self.name} CASCADE")


def raw_sql(store: object, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run `sql` (`?` placeholders) on `store`'s database behind its back, whichever backend:
    for tests that plant what the runtime must detect (code changed under a waiting run, ...)."""
    import sqlite3

    path = getattr(store, "path", "")
    url = getattr(store, "url", "")
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s").encode(), params)
        return
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


class _PgMonitor:
    """A psycopg connection that takes `?` placeholders like sqlite3's, for harness code that
    watches the database behind the runtime's back on either backend."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> object:
        return self._conn.execute(sql.replace("?", "%s").encode(), params)

    def close(self) -> None:
        self._conn.close()


def raw_connection(db: str | Path) -> object:
    """A connection to `db` (a SQLite path or a postgresql:// URL) with sqlite3's `execute`."""
    import sqlite3

    text = str(db)
    if text.startswith("postgresql://"):
        return _PgMonitor(text)
    return sqlite3.connect(text, timeout=30)


PGBOUNCER_PORT = 56432


class PooledDatabase:
    """A database of its own on the test server, reached through PgBouncer in transaction mode
    (`make pgbouncer`), dropped afterwards. Not a schema: a pooler passes no startup options
    (the search_path a schema needs), so a store behind one has its database to itself."""

    def __init__(self) -> None:
        import psycopg

        self.server = server_url()
        host = self.server.rsplit("/", 1)[0]
        self.name = f"tether_pgb_{uuid.uuid4().hex[:12]}"
        self.admin = f"{host}/postgres"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}".encode())
        self.direct = f"{host}/{self.name}"
        pooled_host = host.rsplit(":", 1)[0] + f":{PGBOUNCER_PORT}"
        self.url = f"{pooled_host}/{self.name}"
        if _reachable(self.url) is not None:
            done = subprocess.run(["make", "-s", "pgbouncer"], cwd=REPO, capture_output=True,
                                  text=True, timeout=300)
            why = _reachable(self.url)
            if why is not None:
                self.drop()
                pytest.fail(f"no PgBouncer at {self.url} ({why}); `make pgbouncer`: "
                            f"{(done.stderr or done.stdout)[-1000:]}", pytrace=False)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:  # the pooler's sessions too
            conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)".encode())
