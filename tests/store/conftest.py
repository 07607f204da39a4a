"""The store suite runs on both backends: `backend` is "sqlite" or "postgres", and `store_url`
a fresh, empty database of that backend (a file, or a PostgreSQL schema of its own)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.store.pg_support import PgSchema
from tether.store import Store, open_store

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg_schema(backend: str) -> Iterator[PgSchema | None]:
    if backend != "postgres":
        yield None
        return
    schema = PgSchema()
    yield schema
    schema.drop()


@pytest.fixture
def store_url(backend: str, pg_schema: PgSchema | None, tmp_path: Path) -> str:
    return pg_schema.url if pg_schema is not None else str(tmp_path / "store.db")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def raw(backend: str, store_url: str, pg_schema: PgSchema | None
        ) -> Callable[..., list[tuple[object, ...]]]:
    """Run SQL on the test's database behind the store's back (`?` placeholders on both
    backends): to plant what the store must detect or survive."""

    def run(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if pg_schema is not None:
            return pg_schema.execute(sql.replace("?", "%s"), params)
        conn = sqlite3.connect(store_url, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return run


@pytest.fixture
def use_migrations(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[tuple[int, str]]], None]:
    """Make both backends migrate with `migrations` instead of the shipped list (an older or a
    newer Tether), as each module imported the list."""

    def use(migrations: list[tuple[int, str]]) -> None:
        latest = migrations[-1][0]
        monkeypatch.setattr("tether.store._sqlite.MIGRATIONS", migrations)
        monkeypatch.setattr("tether.store._sqlite.LATEST_VERSION", latest)
        monkeypatch.setattr("tether.store._postgres._SHARED_MIGRATIONS", migrations)

    return use
