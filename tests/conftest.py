"""Shared fixtures: every test gets its own real SQLite database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.native_probe import PROBE_TEST, local_model_crash
from tether import Tether


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A native crash of the local model fails one test (the probe's), not the whole suite."""
    if item.get_closest_marker("model") is not None:
        crash = local_model_crash()
        if crash is not None:
            pytest.skip(f"not run in-process: {crash}; see {PROBE_TEST}")


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "tether.db")


@pytest.fixture
def tether(db_path: str) -> Iterator[Tether]:
    t = Tether(db_path, lease_ttl=5.0)
    yield t
    t.close()
