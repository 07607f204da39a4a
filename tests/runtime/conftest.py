"""The runtime suite on both store backends: `db_path` (and so `tether`, built on it in
tests/conftest.py) is a SQLite file or a PostgreSQL schema of its own on the test server
(tests/store/pg_support.py). Tests that open their own file under tmp_path stay SQLite-only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.pg_support import PgSchema
from tether.runtime.executors import RayExecutor

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(params=["sqlite", "postgres"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "tether.db")
        return
    schema = PgSchema()
    yield schema.url
    schema.drop()


@pytest.fixture(scope="module")
def executor() -> Iterator[RayExecutor]:
    """The local Ray cluster of a Ray test module (test_ray*.py): Ray's workers import the
    tests' modules by reference, so the repository root goes on their PYTHONPATH."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ex = RayExecutor(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ex.connect()
    yield ex
    ray.shutdown()
