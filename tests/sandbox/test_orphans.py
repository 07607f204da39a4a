"""A sandbox never outlives the process that started it: SIGKILL the worker while the agent's
code runs, and every process of the sandbox goes too.

Why: bwrap is started with `--die-with-parent`, but `runsc run` had nothing of the kind. A
SIGKILLed worker left its gVisor sandbox running the agent's code, reparented to init, until
another sandbox start somewhere happened to collect it (`collect_stale`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_WORKER = """
import sys
from tether.sandbox import Sandbox
print("started", flush=True)
Sandbox(sys.argv[1]).run("import time\\ntime.sleep(120)\\n", timeout=100)
"""


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process; None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), fields[0])


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.sandbox
def test_a_sigkilled_worker_takes_its_sandbox_with_it(backend: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, backend], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60
        sandbox: set[int] = set()
        while len(sandbox) < 2:  # the runner and what it started
            assert worker.poll() is None, "the worker ended before its sandbox started"
            assert time.monotonic() < deadline, f"no sandbox started: {sandbox}"
            time.sleep(0.2)
            sandbox = _descendants(worker.pid)
        time.sleep(1.0)  # the code is running now
        sandbox = _descendants(worker.pid)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    deadline = time.monotonic() + 10
    while alive := {pid for pid in sandbox if _stat(pid) is not None}:
        if time.monotonic() > deadline:
            left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in alive}
            pytest.fail(f"the {backend} sandbox outlived its SIGKILLed worker: {left}")
        time.sleep(0.1)
