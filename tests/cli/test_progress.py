"""Issue 17 §9: progress streams while a run executes, one line per journal event.

Real processes against a real database: `python -m tether.cli run` and `tether worker -v`
subprocesses whose output is read line by line as it arrives. A step of the agent waits for a
gate file the test creates only after it has read the earlier lines, so a line printed at the
end of the run (the old behaviour) cannot pass.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARDS = "tests.cli.agents_progress:GUARDS"


class Lines:
    """A subprocess's output stream read by a thread, so lines are seen as they arrive."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, match: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if match(line):
                return line
        raise AssertionError("no matching line; seen:\n" + "\n".join(self.seen))

    def rest(self, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return self.seen
            self.seen.append(line)
        raise AssertionError("the stream did not end")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TETHER_DB": str(tmp_path / "p.db"), "COLUMNS": "200",
            "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt"),
            "TETHER_TEST_GATE": str(tmp_path / "gate"), "PYTHONUNBUFFERED": "1"}


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def open_gate(env: dict[str, str]) -> None:
    Path(env["TETHER_TEST_GATE"]).touch()


def test_run_streams_steps_while_it_executes(env: dict[str, str]) -> None:
    proc = start(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "2")
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        first = lines.wait_for(lambda s: "step_completed" in s and "first" in s)
        # printed while the run is blocked in its next step: the process has not ended
        assert proc.poll() is None
        lines.wait_for(lambda s: "step_started" in s and "gated" in s)
        assert proc.poll() is None
        open_gate(env)
        rest = lines.rest()
        out = proc.stdout.read()  # type: ignore[union-attr]
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert first.startswith("#") and "(" in first and "ms)" in first  # seq and duration
    assert any("run_completed" in s for s in rest)
    assert sum("step_completed" in s for s in lines.seen) == 4  # first, gated, after0, after1
    # one line per event: as many lines as journal events, each seq once, in order
    seqs = [int(s.split()[0][1:]) for s in lines.seen]
    assert seqs == list(range(1, len(seqs) + 1))
    assert "result: 2" in out  # stdout keeps the final timeline and result


def test_run_streams_tool_calls_guard_decisions_and_tokens(env: dict[str, str]) -> None:
    proc = start(env, "run", "tests.cli.agents_progress:gated_react", "--input",
                 '"check order A-7"', "--guards", GUARDS)
    try:
        lines = Lines(proc.stderr)  # type: ignore[arg-type]
        model = lines.wait_for(lambda s: "step_completed" in s and "model:" in s)
        allowed = lines.wait_for(lambda s: "tool:lookup" in s and "[allow lookups]" in s)
        assert proc.poll() is None  # the lookup is still waiting for the gate
        open_gate(env)
        rest = lines.rest()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert "calls lookup" in model and "tokens " in model and "(run " in model
    assert "step_started" in allowed
    denied = [s for s in rest if "tool:delete_all" in s and "[deny" in s]
    assert denied, rest
    totals = [s for s in rest if "model:" in s and "(run " in s]
    # tokens so far grow from one model call to the next
    so_far = [int(s.split("(run ")[1].split("→")[0]) for s in totals]
    assert len(so_far) == 3 and so_far == sorted(so_far) and so_far[0] < so_far[-1]


def test_run_quiet_prints_no_progress(env: dict[str, str]) -> None:
    open_gate(env)
    proc = cli(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "step_completed" not in proc.stderr and "result: 1" in proc.stdout


def test_worker_verbose_prints_a_line_per_event_of_each_run(env: dict[str, str]) -> None:
    ids = [cli(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "1",
               "--detach").stdout.strip() for _ in range(2)]
    worker = start(env, "worker", "-v", "--poll", "0.05")
    try:
        lines = Lines(worker.stdout)  # type: ignore[arg-type]
        for run_id in ids:
            lines.wait_for(lambda s, r=run_id: s.startswith(f"{r} ") and "gated" in s)
        assert worker.poll() is None
        open_gate(env)
        for run_id in ids:
            lines.wait_for(lambda s, r=run_id: s.startswith(f"{r} ") and "run_completed" in s)
    finally:
        worker.terminate()
        worker.wait(30)
    for run_id in ids:
        mine = [s for s in lines.seen if s.startswith(f"{run_id} ")]
        kinds = [s.split()[3] for s in mine]
        assert kinds[0] == "run_started" and kinds[-1] == "run_completed", mine
        seqs = [int(s.split()[1][1:]) for s in mine]
        assert seqs == sorted(set(seqs))  # each event once, in order


def test_worker_without_verbose_prints_no_events(env: dict[str, str]) -> None:
    open_gate(env)
    run_id = cli(env, "run", "tests.cli.agents_progress:gated_steps", "--input", "0",
                 "--detach").stdout.strip()
    worker = start(env, "worker", "--poll", "0.05")
    try:
        deadline = time.monotonic() + 60
        while "succeeded" not in cli(env, "runs").stdout and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert run_id not in out and "step_completed" not in out


def test_run_streams_the_events_of_its_children(env: dict[str, str]) -> None:
    proc = cli(env, "run", "tests.cli.agents_progress:fans_out", "--input", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    spawned = [s.split("· ")[-1] for s in lines if s.startswith("#") and "child_spawned" in s]
    children = [s.split()[0] for s in lines if s.startswith("r") and "step_completed" in s
                and " count" in s]
    assert len(spawned) == 2 and len(set(children)) == 2  # each child's step, under its id
    for child in set(children):
        mine = [s for s in lines if s.startswith(f"{child} ")]
        assert "run_submitted" in mine[0] and "run_completed" in mine[-1]
