"""Issue 17 §12: commands that read or steer existing runs refuse a database that does not
exist, and create nothing. Before: `tether runs --db typo.db` printed an empty table and left an
empty typo.db (and its directory) behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Tether
from tether.store import SQLiteStore, StoreMissing, open_store

from .cli_support import tether

COMMANDS = [
    ["runs"], ["runs", "--json"], ["show", "r123"], ["show", "r123", "--json"],
    ["signal", "r123", "go"], ["cancel", "r123"], ["resolve", "r123", "--retry"],
    ["approvals"], ["approve", "ap1"], ["deny", "ap1"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("where", ["typo.db", "no/such/dir/typo.db"])
def test_a_missing_database_is_refused_and_not_created(tmp_path: Path, command: list[str],
                                                       where: str) -> None:
    db = tmp_path / where
    proc = tether(*command, "--db", str(db), check=False)
    assert proc.returncode == 1, proc.stdout
    assert f"database '{db}' does not exist; nothing was created" in proc.stderr
    assert "--db/TETHER_DB" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # not the file, not its directory, no -wal/-shm


def test_the_env_variable_is_checked_the_same_way(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    proc = tether("runs", db=db, check=False)  # via TETHER_DB
    assert proc.returncode == 1 and "does not exist" in proc.stderr and not db.exists()


def test_the_default_database_is_not_created_by_reading(tmp_path: Path) -> None:
    proc = tether("runs", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and ".tether/tether.db' does not exist" in proc.stderr
    assert not (tmp_path / ".tether").exists()


def test_commands_that_start_runs_still_create_it(tmp_path: Path) -> None:
    db = tmp_path / "new" / "fresh.db"
    tether("run", "tests.runtime.agents_core:sequential", "--input", "2", "--db", str(db))
    assert db.exists()
    assert "succeeded" in tether("runs", "--db", str(db)).stdout


def test_library_must_exist_mode(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for opener in (lambda: SQLiteStore(missing, must_exist=True),
                   lambda: open_store(f"sqlite:///{missing}", must_exist=True),
                   lambda: Tether(missing, must_exist=True)):
        with pytest.raises(StoreMissing, match="does not exist"):
            opener()
    assert not missing.exists()
    (tmp_path / "dir.db").mkdir()  # a directory is not a database either
    with pytest.raises(StoreMissing):
        SQLiteStore(tmp_path / "dir.db", must_exist=True)
    SQLiteStore(missing).close()  # the default mode still creates it
    assert Tether(missing, must_exist=True).runs() == []


def test_keys_create_says_when_it_creates_the_database(tmp_path: Path) -> None:
    """A new deployment's first key makes its database (docs/server.md's first step), but a
    mistyped --db made an empty one silently, and the key then got 401 from the real one."""
    db = tmp_path / "nosuch2.db"
    made = tether("keys", "create", "--db", str(db), "--tenant", "a", "--role", "viewer",
                  "--name", "x")
    assert f"database '{db}' did not exist: created it" in " ".join(made.stderr.split())
    assert db.exists() and made.stdout.startswith("tk_")
    again = tether("keys", "create", "--db", str(db), "--tenant", "a", "--role", "viewer",
                   "--name", "y")
    assert "did not exist" not in again.stderr
