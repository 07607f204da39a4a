"""Prepared statements behind a transaction pooler that does not keep them per client (PgBouncer
1.18 here, as before 1.21 or with `max_prepared_statements = 0`), on a server and PgBouncer of
this module's own (`pg_private.py`), its pool two server sessions so a test picks the session
each transaction lands on (a "holder" keeps the other one busy in an open transaction).

Before: each client names its statements `_pg3_0`, `_pg3_1`, ... When two clients prepared
statements of the same name and the same number of parameters on two server sessions, and one
client's next transaction landed on the other's session, the Bind ran the other client's
statement without any error: `has_artifact` answered True for an artifact never stored (the
other store's `SELECT COUNT(*) FROM events WHERE run_id=$1`, one row). The 08P01/26000/42P05
answers the store turns prepared statements off on only come when the counts differ."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.store.pg_private import PrivateBouncer, PrivatePg
from tether.store import StoreError
from tether.store._postgres import PostgresStore
from tether.store._postgres_prepare import parse_setting, take_setting

TIMES = 8  # more than psycopg's threshold (prepared at the 6th execution)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PrivatePg, PrivateBouncer]]:
    pg = PrivatePg()
    bouncer = PrivateBouncer(pg, pool_size=2)
    try:
        yield pg, bouncer
    finally:
        bouncer.close()
        pg.close()


@pytest.fixture
def database(servers: tuple[PrivatePg, PrivateBouncer]) -> Iterator[str]:
    pg, _ = servers
    name = pg.new_database()
    yield name
    pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Holder:
    """A client of the pooler that keeps one server session busy in an open transaction."""

    def __init__(self, url: str) -> None:
        self.conn: psycopg.Connection[Any] = psycopg.connect(url, prepare_threshold=None)

    def hold(self) -> int:
        """Take a session (the only free one) and keep it: its server process id."""
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])

    def release(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def test_two_stores_statements_of_one_name_and_arity_never_run_each_other(
        servers: tuple[PrivatePg, PrivateBouncer], database: str) -> None:
    _, bouncer = servers
    url = bouncer.url(database)
    PostgresStore(url).close()  # migrated (its INSERT into meta, run once a version, prepared)
    a, b = PostgresStore(url), PostgresStore(url)
    first, second = Holder(url), Holder(url)
    try:
        digest = hashlib.sha256(b"never stored").hexdigest()
        s1 = first.hold()
        for _ in range(TIMES):  # on the other session, s2: B's `_pg3_0` (one parameter)
            assert b.count_events("some-run") == 0
        s2 = second.hold()
        assert s2 != s1
        first.release()
        for _ in range(TIMES):  # on s1: A's `_pg3_0` (one parameter too)
            assert a.has_artifact(digest) is False
        assert first.hold() == s1
        second.release()
        # A's next read lands on s2, where `_pg3_0` is B's count (one row: "found")
        assert a.has_artifact(digest) is False
        assert b.count_events("some-run") == 0
        assert (a.prepares, b.prepares) == (False, False)
    finally:
        for closing in (first, second, a, b):
            closing.close()


def test_a_pooler_is_seen_before_the_first_statement_is_prepared(
        servers: tuple[PrivatePg, PrivateBouncer], database: str,
        caplog: pytest.LogCaptureFixture) -> None:
    pg, bouncer = servers
    caplog.set_level(logging.INFO, "tether.store")
    pooled = PostgresStore(bouncer.url(database))
    direct = PostgresStore(pg.url(database))
    try:
        assert pooled.prepares is False and direct.prepares is True
        for _ in range(TIMES):  # straight to the server, statements are still prepared
            names = direct._query("SELECT name FROM pg_prepared_statements")
        assert [n for (n,) in names if n.startswith("_pg3_")]
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "a connection pooler is in between" in messages
        assert messages.count("a connection pooler is in between") == 1
    finally:
        pooled.close()
        direct.close()


def test_the_url_says_whether_to_prepare(servers: tuple[PrivatePg, PrivateBouncer],
                                         database: str) -> None:
    pg, bouncer = servers
    never = PostgresStore(f"{pg.url(database)}?connect_timeout=5&prepare_threshold=none")
    try:
        assert never.prepares is False
        for _ in range(TIMES):
            names = never._query("SELECT name FROM pg_prepared_statements")
        assert names == []
        assert never.url.endswith("prepare_threshold=none")  # the store's URL, as given
    finally:
        never.close()
    # a pooler said to keep prepared statements per client: trusted, and a missing statement
    # (PgBouncer 1.18 keeps none) still turns them off, the read answered right
    trusted = PostgresStore(bouncer.url(database) + "?prepare_threshold=5",
                            prepare_threshold=None)  # the URL's word wins
    first, second = Holder(bouncer.url(database)), Holder(bouncer.url(database))
    try:
        assert trusted.prepares is True
        first.hold()
        for _ in range(TIMES):
            assert trusted.has_artifact("0" * 64) is False
        second.hold()
        first.release()
        assert trusted.has_artifact("0" * 64) is False  # `_pg3_0` missing here: 26000
        assert trusted.prepares is False
    finally:
        for closing in (first, second, trusted):
            closing.close()
    with pytest.raises(StoreError, match="invalid prepare_threshold='sometimes'"):
        PostgresStore(pg.url(database) + "?prepare_threshold=sometimes")


def test_the_setting_is_taken_out_of_the_url_and_the_rest_kept() -> None:
    base = "postgresql://u:pw@h:5/db"
    assert take_setting(base, "auto") == (base, "auto")
    assert take_setting(f"{base}?options=-csearch_path%3Ds&prepare_threshold=none", 5) == (
        f"{base}?options=-csearch_path%3Ds", None)
    assert take_setting(f"{base}?prepare_threshold=0&sslmode=disable", None) == (
        f"{base}?sslmode=disable", 0)
    assert take_setting(f"{base}?prepare_threshold=auto", None) == (base, "auto")
    assert take_setting(f"{base}?sslmode=disable", 3) == (f"{base}?sslmode=disable", 3)
    assert parse_setting("NONE") is None and parse_setting("12") == 12
    with pytest.raises(StoreError):
        parse_setting("-1")
