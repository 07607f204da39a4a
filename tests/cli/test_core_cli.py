"""The core CLI end to end through a real subprocess, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tether(*args: str, db: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TETHER_DB": str(db), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"tether {args} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


def test_run_show_runs(db: Path) -> None:
    out = tether("run", "tests.runtime.agents_core:sequential", "--input", "3", db=db).stdout
    assert "succeeded" in out and "result: 3" in out and "step_completed" in out
    assert "succeeded" in tether("runs", db=db).stdout
    runs = json.loads(tether("runs", "--json", db=db).stdout)
    assert runs[0]["status"] == "succeeded" and runs[0]["result"] == 3
    shown = tether("show", runs[0]["id"], db=db).stdout
    assert "run_completed" in shown and "took" in shown


def test_detach_signal_and_worker(db: Path) -> None:
    run_id = tether("run", "tests.runtime.agents_core:waits_then_steps", "--detach",
                    db=db).stdout.strip()
    assert run_id.startswith("r")
    env = {**os.environ, "TETHER_DB": str(db)}
    worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--poll", "0.05"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        _wait_status(db, run_id, "waiting")
        tether("signal", run_id, "go", '{"ok": 1}', db=db)
        _wait_status(db, run_id, "succeeded")
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "stopped after" in out
    again = tether("signal", run_id, "go", db=db, check=False)
    assert again.returncode == 1 and "already finished (succeeded)" in again.stderr


def test_cancel_and_resolve_via_cli(db: Path) -> None:
    out = tether("run", "tests.runtime.agents_core:tree_parent", db=db).stdout
    assert "waiting" in out
    run_id = next(r["id"] for r in json.loads(tether("runs", "--json", db=db).stdout)
                  if r["parent_id"] is None)
    out = tether("cancel", run_id, db=db).stdout
    assert "cancelled 4 run(s)" in out
    bad = tether("resolve", run_id, "--retry", db=db, check=False)
    assert bad.returncode == 1 and "already finished (cancelled)" in bad.stderr
    both = tether("resolve", run_id, "--retry", "--skip", db=db, check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["run", "tests.runtime.agents_core:sequential", "--input", "{oops"], "is not valid JSON"),
    (["run", "no_such_module:agent"], "module 'no_such_module' not found"),
    (["run", "tests.runtime.agents_core:missing"], "has no attribute 'missing'"),
    (["run", "not-a-ref"], "must look like"),
    (["show", "r-unknown"], "no run with id 'r-unknown'"),
    (["runs", "--status", "sleeping"], "unknown status 'sleeping'"),
    (["signal", "r-unknown", "go"], "no run with id"),
])
def test_bad_input_gives_specific_errors(db: Path, args: list[str], message: str) -> None:
    from tether.store import SQLiteStore

    SQLiteStore(db).close()  # an existing, empty database: the error is about the input
    proc = tether(*args, db=db, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing half-written: a rejected command leaves no run behind
    assert json.loads(tether("runs", "--json", db=db).stdout) == []


def test_agent_that_raises_exits_non_zero(db: Path) -> None:
    proc = tether("run", "tests.runtime.agents_core:raises", db=db, check=False)
    assert proc.returncode == 1 and "RuntimeError: the agent broke" in proc.stdout


def test_corrupt_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("garbage" * 1000)
    proc = tether("runs", db=bad, check=False)
    assert proc.returncode == 1 and "not a readable Tether database" in proc.stderr


def _wait_status(db: Path, run_id: str, status: str, timeout: float = 30.0) -> None:
    import time

    from tether.store import SQLiteStore

    store = SQLiteStore(db)
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = store.get_run(run_id)
        if run is not None and run.status == status:
            store.close()
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {status}: {store.get_run(run_id)}")
