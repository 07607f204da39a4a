"""Issue 17 §9: `tether show RUN --follow` tails a run executed by another process.

Real processes: the run is queued with `--detach`, executed by a `tether worker` subprocess, and
followed by a `tether show --follow` subprocess whose lines are read as they arrive.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.test_progress import Lines, cli, env, open_gate, start

__all__ = ["env"]  # the fixture, shared with the progress tests


def detach(env: dict[str, str], agent: str, payload: str) -> str:
    proc = cli(env, "run", agent, "--input", payload, "--detach")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_follow_tails_a_run_executed_by_a_worker(env: dict[str, str]) -> None:
    run_id = detach(env, "tests.cli.agents_progress:gated_steps", "2")
    follower = start(env, "show", run_id, "--follow")  # before any worker: the run is queued
    worker = None
    try:
        lines = Lines(follower.stdout)  # type: ignore[arg-type]
        lines.wait_for(lambda s: "run_submitted" in s)
        worker = start(env, "worker", "--poll", "0.05")
        lines.wait_for(lambda s: "step_completed" in s and "first" in s)
        lines.wait_for(lambda s: "step_started" in s and "gated" in s)
        assert follower.poll() is None  # still following: the run is blocked, not finished
        open_gate(env)
        rest = lines.rest()
        assert follower.wait(30) == 0
    finally:
        follower.kill()
        if worker is not None:
            worker.terminate()
            worker.wait(30)
    assert rest[-1] == f"run {run_id} succeeded"
    assert any("run_completed" in s for s in rest)
    seqs = [int(s.split()[0][1:]) for s in rest if s.startswith("#")]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order


def _run_with_worker(env: dict[str, str], run_id: str, status: str) -> None:
    worker = start(env, "worker", "--poll", "0.05")
    try:
        lines = Lines(start(env, "show", run_id, "--follow").stdout)  # type: ignore[arg-type]
        lines.wait_for(lambda s: s.startswith(f"run {run_id} {status}"))
    finally:
        worker.terminate()
        worker.wait(30)


def test_follow_exit_code_says_failed(env: dict[str, str]) -> None:
    run_id = detach(env, "tests.cli.agents_progress:flaky_step", '"A-7"')
    _run_with_worker(env, run_id, "failed")
    again = cli(env, "show", run_id, "--follow")  # finished: prints the journal, exits at once
    assert again.returncode == 1
    assert "step_failed" in again.stdout and "ConnectionError" in again.stdout
    assert again.stdout.strip().splitlines()[-1].startswith(f"run {run_id} failed: ")


def test_follow_stops_when_the_run_waits(env: dict[str, str]) -> None:
    run_id = detach(env, "tests.runtime.agents_core:waits_then_steps", "null")
    _run_with_worker(env, run_id, "waiting")
    again = cli(env, "show", run_id, "--follow")
    assert again.returncode == 5
    assert "signal_waiting" in again.stdout
    assert "waiting for signal 'go'" in again.stdout.strip().splitlines()[-1]


def test_follow_succeeded_run_exits_zero_with_result_events(env: dict[str, str]) -> None:
    open_gate(env)
    proc = cli(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "0", "--quiet")
    run_id = next(w for w in proc.stdout.split() if w.startswith("r") and len(w) == 16)
    shown = cli(env, "show", run_id, "--follow")
    assert shown.returncode == 0, shown.stderr
    times = [s.split()[1] for s in shown.stdout.splitlines() if s.startswith("#")]
    assert times[0] == "+0.0s"  # times count from the run's first event


def test_follow_unknown_run_is_a_clear_error(env: dict[str, str]) -> None:
    detach(env, "tests.cli.agents_progress:gated_steps", "0")  # the database exists
    proc = cli(env, "show", "rnotarun000000", "--follow")
    assert proc.returncode != 0 and "rnotarun000000" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_follow_prints_the_same_lines_as_tether_run(env: dict[str, str], tmp_path: Path) -> None:
    open_gate(env)
    proc = cli(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "1")
    live = [s for s in proc.stderr.splitlines() if s.startswith("#")]
    run_id = next(w for w in proc.stdout.split() if w.startswith("r") and len(w) == 16)
    followed = [s for s in cli(env, "show", run_id, "--follow").stdout.splitlines()
                if s.startswith("#")]
    # one renderer: the same events give the same lines, but for times and durations
    def strip_times(lines: list[str]) -> list[list[str]]:
        return [re.sub(r"\+[\d.]+s|\(\d+ ms\)", "", s).split() for s in lines]

    assert live and strip_times(live) == strip_times(followed)


def test_follow_goes_on_through_a_short_timer(env: dict[str, str]) -> None:
    """A run waiting for a timer that fires soon is not "waiting" for the follower: it keeps
    following until the run ends (a timer far away, or a signal, stops it: exit 5)."""
    run_id = detach(env, "tests.runtime.agents_core:long_timer", "2.5")
    worker = start(env, "worker", "--poll", "0.05")
    try:
        followed = cli(env, "show", run_id, "--follow")
    finally:
        worker.terminate()
        worker.wait(30)
    assert followed.returncode == 0, followed.stdout
    lines = followed.stdout.splitlines()
    assert any("timer_started" in s for s in lines) and any("timer_fired" in s for s in lines)
    assert lines[-1] == f"run {run_id} succeeded"
