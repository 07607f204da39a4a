"""`tether doctor` on the store: what it opens, its schema, and the two conditions that
degrade a deployment before any error shows (a disk filling under an SQLite journal, a host's
clock far off the PostgreSQL server's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.small_disk import small_disk
from tests.store.pg_support import PgSchema
from tether import Tether
from tether.cli import app
from tether.store import LATEST_VERSION


def _doctor(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["doctor", "--no-smoke", "--json", *args])
    return result.exit_code, json.loads(result.output)


def test_an_sqlite_store_reports_its_schema_and_free_disk(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    Tether(db).close()
    code, report = _doctor("--db", db)
    store = report["store"]
    assert code == 0 and store["backend"] == "sqlite" and store["where"].endswith("t.db")
    assert store["schema_version"] == LATEST_VERSION
    assert store["free_bytes"] > 0 and store["warnings"] == []


def test_an_sqlite_store_other_users_can_read_is_a_warning(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    Tether(str(db)).close()
    os.chmod(db, 0o644)  # as a database made before Tether made them private
    code, report = _doctor("--db", str(db))
    [warning] = report["store"]["warnings"]
    assert code == 0 and "is readable by other users (mode 0644)" in warning
    assert f"chmod 600 {db}" in warning


def test_a_store_named_that_does_not_exist_fails_and_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    code, report = _doctor("--db", str(db))
    assert code == 1 and "does not exist" in report["store"]["error"]
    assert not db.exists()


def test_no_store_named_and_none_yet_is_not_an_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_DB", raising=False)
    code, report = _doctor()
    assert code == 0 and report["store"] is None
    assert not (tmp_path / ".tether").exists()


def test_little_free_disk_under_an_sqlite_journal_is_a_warning(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "64m") as disk:
        db = str(disk / "t.db")
        Tether(db).close()
        code, report = _doctor("--db", db)
    assert code == 0
    (warning,) = report["store"]["warnings"]
    assert "MiB free in" in warning and "runs pause" in warning


def _doctor_process(db: str, *faketime: str) -> dict[str, Any]:
    if faketime and shutil.which("faketime") is None:
        pytest.fail("faketime is not installed: `make test` installs it (Debian's faketime)")
    out = subprocess.run([*faketime, sys.executable, "-m", "tether.cli", "doctor", "--no-smoke",
                          "--json", "--db", db], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    assert out.returncode == 0, out.stderr
    store: dict[str, Any] = json.loads(out.stdout)["store"]
    return store


@pytest.mark.slow
def test_a_host_clock_far_off_the_postgres_servers_is_a_warning() -> None:
    schema = PgSchema()
    try:
        Tether(schema.url).close()
        synced = _doctor_process(schema.url)
        assert synced["backend"] == "postgres" and abs(synced["clock_offset_s"]) < 1.0
        assert synced["warnings"] == [] and synced["schema_version"] == LATEST_VERSION
        ahead = _doctor_process(schema.url, "faketime", "-f", "+30s")
        assert -31 < ahead["clock_offset_s"] < -29  # the server's clock minus this host's
        (warning,) = ahead["warnings"]
        assert "30.0s ahead of the PostgreSQL server's" in warning and "NTP" in warning
    finally:
        schema.drop()
