"""The counts a run's summary and a worker's last line give, as a new user read them.

Before: one call that needed an approval was `guard decisions: 2 approve` (its request and its
approved execution each journal the decision); `1 tool calls`, `1 model calls`; a run that
called no model said `cost unknown (no price for this model)`; a worker that took a run whose
agent file was missing, and executed nothing of it, said `stopped after 1 executions`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tether.guards import generate_keypair

from .cli_support import ROOT, tether, wait_status
from .test_first_hour_approvals import AGENT, GOVERNANCE

PLAIN = '''
async def tally(ctx, goal):
    return await ctx.step("count", lambda: len(goal))
'''


def said(text: str) -> str:
    return " ".join(text.split())


def worker_until(db: Path, cwd: Path, done: str | None) -> str:
    """Start `tether worker`, wait until run `done` succeeded (None: a few polls), stop it;
    what it printed."""
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--poll", "0.05"],
                              cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        if done is None:
            time.sleep(3)
        else:
            wait_status(db, done, "succeeded")
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    return out + err


def test_an_approved_call_is_one_decision_and_counts_are_singular(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(AGENT)
    (tmp_path / "governance.py").write_text(GOVERNANCE)
    private, public = generate_keypair()
    (tmp_path / "bob.key").write_text(private)
    (tmp_path / "approvers.yaml").write_text(json.dumps({"bob": public}))
    db = tmp_path / "t.db"
    run = tether("run", "--guards", "governance.py:GUARDS", "shop.py:support", "--input",
                 '"refund A-7"', "--quiet", db=db, cwd=tmp_path)
    run_id = run.stdout.split("journal of run ")[1].split()[0]
    assert "1 model call, " in said(run.stdout) and "no tool calls;" in said(run.stdout)
    assert "guard decisions: 1 approve" in said(run.stdout)  # asked
    tether("approve", f"{run_id}.a1", "--key", "bob.key", "--keys", "approvers.yaml",
           db=db, cwd=tmp_path, env={"TETHER_APPROVER": ""})
    assert re.search(r"stopped after 1 execution$", worker_until(db, tmp_path, run_id), re.M)
    shown = said(tether("show", run_id, db=db, cwd=tmp_path).stdout)
    assert "2 model calls, " in shown and "; 1 tool call;" in shown
    assert "guard decisions: 1 approve" in shown  # asked, then approved: one decision


def test_a_run_without_model_calls_names_no_cost(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(PLAIN)
    out = said(tether("run", "plain.py:tally", "--input", '"abc"', db=tmp_path / "t.db",
                      cwd=tmp_path).stdout)
    assert "no model calls; no tool calls; guard decisions: none" in out
    assert "cost" not in out


def test_a_run_a_worker_cannot_load_is_no_execution(tmp_path: Path) -> None:
    (tmp_path / "gone.py").write_text(PLAIN)
    db = tmp_path / "t.db"
    tether("run", "gone.py:tally", "--input", '"abc"', "--detach", db=db, cwd=tmp_path)
    (tmp_path / "gone.py").unlink()
    out = said(worker_until(db, tmp_path, None))
    assert "stopped after 0 executions; 1 run not executed (see the warning above)" in out
