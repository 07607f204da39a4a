"""Issue 17 §11 and §13: a signal the run does not wait for is kept but warned about, and the
status text never goes stale (a woken run's reason, a dead worker's lease).

Before: `tether signal R aproved` said "delivered" and nothing else while the run waited for
`approved`; after a signal a queued run still said "waiting for signal"; a SIGKILLed worker's
run stayed `running` with no word about its lease.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether import Tether

from .cli_support import ROOT, tether, wait_status

WAITS = "tests.runtime.agents_core:waits_then_steps"  # waits for signal 'go'


@pytest.fixture
def waiting_run(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "steer.db"
    t = Tether(db)
    run_id = t.submit(WAITS, {})
    asyncio.run(t.drive(run_id))
    assert t.get(run_id).status == "waiting"
    t.close()
    return db, run_id


@pytest.mark.parametrize("typo", ["og", "Go", "go ", "approved"])
def test_a_signal_the_run_does_not_wait_for_is_warned_about(waiting_run: tuple[Path, str],
                                                            typo: str) -> None:
    db, run_id = waiting_run
    proc = tether("signal", run_id, typo, db=db)
    assert proc.returncode == 0 and "delivered" in proc.stdout  # early signals stay a feature
    assert "warning:" in proc.stderr
    assert "waiting for signal 'go'" in proc.stderr and repr(typo) in proc.stderr
    pending = Tether(db).store.pending_signals(run_id)
    assert [s.name for s in pending] == [typo]  # kept, in case the run asks for it later


def test_the_awaited_signal_gets_no_warning(waiting_run: tuple[Path, str]) -> None:
    db, run_id = waiting_run
    proc = tether("signal", run_id, "go", '{"ok": 1}', db=db)
    assert proc.stderr == "" and "delivered" in proc.stdout


def test_an_early_signal_to_a_run_that_waits_for_nothing_yet_gets_no_warning(
        tmp_path: Path) -> None:
    db = tmp_path / "early.db"
    run_id = Tether(db).submit(WAITS, {})  # queued: it has not asked for anything yet
    proc = tether("signal", run_id, "go", db=db)
    assert proc.returncode == 0 and proc.stderr == ""


def test_library_names_what_a_run_waits_for(waiting_run: tuple[Path, str]) -> None:
    db, run_id = waiting_run
    t = Tether(db)
    assert t.awaited_signals(run_id) == ["go"]
    t.signal(run_id, "go", 1)
    asyncio.run(t.drive(run_id))
    assert t.get(run_id).status == "succeeded" and t.awaited_signals(run_id) == []


def test_a_woken_run_no_longer_says_it_is_waiting(waiting_run: tuple[Path, str]) -> None:
    db, run_id = waiting_run
    tether("signal", run_id, "go", db=db)
    (run,) = json.loads(tether("runs", "--json", db=db).stdout)
    assert run["status"] == "queued"
    assert "waiting for" not in (run["reason"] or "")
    assert run["reason"] == "signal 'go' arrived; queued to resume"
    shown = tether("show", run_id, db=db).stdout
    assert "waiting:" not in shown


def test_a_parent_woken_by_its_child_says_so(tmp_path: Path) -> None:
    from tether.runtime import ops

    t = Tether(tmp_path / "tree.db")
    parent = t.submit("tests.runtime.agents_core:tree_parent", None)
    asyncio.run(t.drive(parent))
    assert "waiting for" in (t.get(parent).reason or "")
    kid = next(r.id for r in t.runs() if r.parent_id == parent)
    t.signal(kid, "never", 1)
    assert t.store.write(lambda tx: tx.claim("w-test", 10, 30.0)) == [kid]
    t.store.write(ops.finish(kid, "w-test", "succeeded", result=1))
    woken = t.get(parent)
    assert woken.status == "queued"
    assert woken.reason == f"child run {kid} ended succeeded; queued to resume"


def test_a_killed_workers_lease_is_shown_then_said_expired(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    run_id = Tether(db).submit("tests.runtime.agents_core:long_step", 120.0)
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--poll", "0.05",
                               # long enough that the checks below run before it expires,
                               # even on a loaded machine (each CLI start can take seconds)
                               "--lease-ttl", "15"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_status(db, run_id, "running")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    alive = tether("runs", db=db).stdout
    assert "running" in alive and "expires at" in alive, alive
    lease = json.loads(tether("runs", "--json", db=db).stdout)[0]["lease"]
    assert lease["expired"] is False and lease["worker"]
    time.sleep(max(0.0, lease["expires_at"] - time.time()) + 0.2)
    (run,) = json.loads(tether("runs", "--json", db=db).stdout)
    assert run["status"] == "running" and run["lease"]["expired"] is True
    shown = tether("show", run_id, db=db).stdout
    assert "expired at" in shown and "another worker will take it over" in shown
