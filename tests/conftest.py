"""Shared fixtures: every test gets its own real SQLite database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether import Tether


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "tether.db")


@pytest.fixture
def tether(db_path: str) -> Iterator[Tether]:
    t = Tether(db_path, lease_ttl=5.0)
    yield t
    t.close()
