"""`tether backup` on the two backends: SQLite's copy is in docs/cli.md (run by
tests/docs/test_cli_docs.py) and tests/store/test_sqlite.py; PostgreSQL is told where to go."""

from __future__ import annotations

from pathlib import Path

from tests.store.pg_support import PgSchema
from tether import Tether

from .cli_support import tether


def test_a_postgresql_store_is_pointed_to_its_own_tools(tmp_path: Path) -> None:
    schema = PgSchema()
    try:
        Tether(schema.url).close()
        proc = tether("backup", str(tmp_path / "b.db"), "--db", schema.url, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "is not an SQLite file" in proc.stderr and "pg_dump" in proc.stderr
        assert not (tmp_path / "b.db").exists()
    finally:
        schema.drop()


def test_a_missing_database_is_not_created_by_a_backup(tmp_path: Path) -> None:
    proc = tether("backup", str(tmp_path / "b.db"), db=tmp_path / "typo.db", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "b.db").exists()
