"""The runtime suite on both store backends: `db_path` (and so `tether`, built on it in
tests/conftest.py) is a SQLite file or a PostgreSQL schema of its own on the test server
(tests/store/pg_support.py). Tests that open their own file under tmp_path stay SQLite-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.pg_support import PgSchema


@pytest.fixture(params=["sqlite", "postgres"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "tether.db")
        return
    schema = PgSchema()
    yield schema.url
    schema.drop()
