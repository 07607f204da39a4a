"""Ctrl-C while `tether run` or `tether worker` executes a step: said, and harmless.

Before: `tether run`'s second Ctrl-C raised KeyboardInterrupt inside the event loop (asyncio.run's
own handling): the run's task was destroyed mid-step ("Task was destroyed but it is pending!"),
the step's effect happened but its step_completed was never journaled, and the run stayed
`running` until its lease expired, then was in doubt (`tether resolve`). Neither command said
anything while it waited for the step: ~18 s of silence, then exit 130.

Real processes over a real SQLite file: the agent's one step runs in a thread and waits for a
gate file the test creates only after both Ctrl-Cs were answered, so nothing here depends on
timing; SIGINT is sent to the process as a terminal's Ctrl-C sends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.cli_support import ROOT, tether, wait_status
from tests.cli.test_progress import Lines

AGENT = """\
import os, time

def work():
    while not os.path.exists("gate"):  # the test opens it once both Ctrl-Cs were answered
        time.sleep(0.02)
    open("long.log", "a").write("done\\n")
    return "ok"

async def long(ctx, _=None):
    out = await ctx.step("long", work)
    return await ctx.step("after", lambda: out + "!")  # where a stopping worker stops
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "long.py").write_text(AGENT)
    return tmp_path


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("TETHER_DB", None)
    return subprocess.Popen([sys.executable, "-m", "tether", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def journal(db: Path, run_id: str) -> list[tuple[str, str | None]]:
    from tether.store import SQLiteStore

    store = SQLiteStore(db, must_exist=True)
    try:
        return [(e.kind, e.name) for e in store.load_events(run_id)]
    finally:
        store.close()


def interrupt_twice(proc: subprocess.Popen[str], lines: Lines, run_id: str) -> tuple[str, str]:
    """Ctrl-C, the line that answers it, Ctrl-C again, its line; the process goes on."""
    proc.send_signal(signal.SIGINT)
    first = lines.wait_for(lambda s: "interrupted: " in s, timeout=15)
    proc.send_signal(signal.SIGINT)
    again = lines.wait_for(lambda s: "still waiting" in s, timeout=15)
    assert proc.poll() is None, "a second Ctrl-C must not end the process mid-step"
    assert run_id in first
    return first, again


def test_run_says_what_it_waits_for_and_a_second_ctrl_c_loses_nothing(lab: Path) -> None:
    proc = start(lab, "run", "long.py:long", "--db", "l2.db")
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        started = lines.wait_for(lambda s: "step_started" in s and "long" in s)
        assert started
        run_id = tether("runs", "--json", "--db", str(lab / "l2.db")).stdout.split('"id": "')[1]
        run_id = run_id.split('"')[0]
        first, again = interrupt_twice(proc, lines, run_id)
        (lab / "gate").touch()
        rest = lines.rest()
        out = proc.stdout.read()  # type: ignore[union-attr]
        code = proc.wait(30)
    finally:
        proc.kill()
        proc.wait(30)
    assert first.startswith("interrupted: waiting for step 'long' to finish"), first
    assert "up to 10s" in first
    assert f"handing run {run_id} back to the queue" in first
    assert "tether worker --db l2.db" in first
    assert "step 'long'" in again and f"kill -KILL {proc.pid}" in again, again
    assert code == 130, (out, rest)
    assert not any("Task was destroyed" in s or "Traceback" in s for s in rest), rest
    assert any("step_completed" in s and "long" in s for s in rest), rest
    assert any(f"run {run_id} is back in the queue" in s for s in rest), rest
    assert (lab / "long.log").read_text() == "done\n"
    # the step's outcome is journaled and the run is queued, not running nor in doubt
    assert ("step_completed", "long") in journal(lab / "l2.db", run_id)
    wait_status(lab / "l2.db", run_id, "queued", timeout=5)
    # a worker resumes it from the journal: the step replays, its effect is not repeated
    worker = start(lab, "worker", "--db", "l2.db", "--poll", "0.05")
    try:
        wait_status(lab / "l2.db", run_id, "succeeded")
    finally:
        worker.terminate()
        worker.wait(30)
    assert (lab / "long.log").read_text() == "done\n"


def test_worker_says_what_it_waits_for_on_ctrl_c(lab: Path) -> None:
    run_id = tether("run", "long.py:long", "--db", "w.db", "--detach", cwd=lab).stdout.strip()
    proc = start(lab, "worker", "--db", "w.db", "--poll", "0.05")
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        wait_status(lab / "w.db", run_id, "running")
        while ("step_started", "long") not in journal(lab / "w.db", run_id):
            time.sleep(0.05)
        first, again = interrupt_twice(proc, lines, run_id)
        (lab / "gate").touch()
        rest = lines.rest()
        code = proc.wait(30)
    finally:
        proc.kill()
        proc.wait(30)
    # a log record like the worker's others (stderr is its log: --log-format json keeps it)
    assert " WARNING tether.worker: interrupted: waiting for step 'long' to finish" in first
    assert f"handing run {run_id} back to the queue" in first
    assert "tether worker --db w.db" in first
    assert "step 'long'" in again, again
    assert code == 0 and not any("Traceback" in s for s in rest), rest
    assert ("step_completed", "long") in journal(lab / "w.db", run_id)
    wait_status(lab / "w.db", run_id, "queued", timeout=5)


def test_run_interrupted_between_steps_hands_the_run_back_at_once(tmp_path: Path) -> None:
    """No step running (the run sleeps on a timer here): nothing to wait for, and it says so."""
    (tmp_path / "nap.py").write_text(
        "async def nap(ctx, _=None):\n    await ctx.sleep(20)\n    return 'rested'\n")
    proc = start(tmp_path, "run", "nap.py:nap", "--db", "n.db")
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        lines.wait_for(lambda s: "timer_started" in s)
        run_id = tether("runs", "--json", "--db", str(tmp_path / "n.db")).stdout
        run_id = run_id.split('"id": "')[1].split('"')[0]
        proc.send_signal(signal.SIGINT)
        first = lines.wait_for(lambda s: s.startswith("interrupted"), timeout=15)
        rest = lines.rest()
        code = proc.wait(30)
    finally:
        proc.kill()
        proc.wait(30)
    assert first == (f"interrupted: stopping; run {run_id} is waiting (a worker resumes it: "
                     "tether worker --db n.db)"), first
    assert code == 130 and not any("Traceback" in s for s in rest), rest
