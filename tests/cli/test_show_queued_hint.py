"""A queued run that no worker takes says how to start one.

Before: after `tether run greet.py:greet -i 1 --detach` with no worker, `tether show R --follow`
printed `#1 run_submitted` and hung silently (a waiting run gets a `send it: tether signal …`
line; a queued one got nothing). Real processes over a real SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.cli_support import ROOT, tether, wait_status
from tests.cli.test_progress import Lines


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("TETHER_DB", None)
    return subprocess.Popen([sys.executable, "-m", "tether", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def queued(tmp_path: Path) -> str:
    (tmp_path / "greet.py").write_text("async def greet(ctx, n):\n    return f'hi {n}'\n")
    return tether("run", "greet.py:greet", "-i", "1", "--detach", "--db", "q.db",
                  cwd=tmp_path).stdout.strip()


def test_follow_of_a_queued_run_says_how_to_start_a_worker(tmp_path: Path) -> None:
    run_id = queued(tmp_path)
    proc = start(tmp_path, "show", run_id, "--follow", "--db", "q.db")
    try:
        hint = Lines(proc.stderr).wait_for(  # type: ignore[arg-type]
            lambda s: "no worker" in s, timeout=20)
        assert proc.poll() is None  # it goes on following: a worker may come
        worker = start(tmp_path, "worker", "--db", "q.db", "--poll", "0.05")
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            worker.terminate()
            worker.wait(30)
    finally:
        proc.kill()
        proc.wait(30)
    assert hint == "no worker has taken it yet: start one with tether worker --db q.db"
    assert proc.returncode == 0 and "run_completed" in out, out
    wait_status(tmp_path / "q.db", run_id, "succeeded", timeout=5)


def test_show_of_a_queued_run_says_how_to_start_a_worker(tmp_path: Path) -> None:
    run_id = queued(tmp_path)
    out = tether("show", run_id, "--db", "q.db", cwd=tmp_path).stdout.splitlines()
    assert out[-2:] == ["status: queued",
                        "no worker has taken it yet: start one with tether worker --db q.db"]
    # the database a bare `tether worker` opens ($TETHER_DB here) needs no --db
    out = tether("show", run_id, db=tmp_path / "q.db").stdout.splitlines()
    assert out[-1] == "no worker has taken it yet: start one with tether worker"
