"""The README's durable example, run as a user runs it (issue 17 §1): importing the file, as the
CLI and every worker do, queues nothing; running it as a script queues exactly one run, which then
behaves as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import ROOT, blocks
from tether import Tether
from tether.runtime import resolve_agent

README = ROOT / "README.md"


def durable_example() -> str:
    """The README's first python block: the billing agent."""
    return next(b.code for b in blocks(README) if b.lang == "python")


@pytest.fixture
def billing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "billing.py"
    path.write_text(durable_example())
    return path


def queued(db: Path) -> list[str]:
    if not db.exists():
        return []
    t = Tether(str(db))
    try:
        return [r.id for r in t.runs()]
    finally:
        t.close()


def test_importing_the_example_queues_nothing(billing: Path) -> None:
    resolve_agent(f"{billing}:billing")  # what a worker does
    resolve_agent(f"{billing}:audit")  # a second import path: the child agent
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(2):  # two more processes importing it, as two workers would
        subprocess.run([sys.executable, "-c", "import billing"], cwd=billing.parent, env=env,
                       check=True, timeout=120)
    assert queued(billing.parent / "billing.db") == []


async def test_running_the_example_queues_one_run_that_behaves_as_documented(
        billing: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "billing.py"], cwd=billing.parent, env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    db = billing.parent / "billing.db"
    runs = queued(db)
    assert runs == [out.stdout.strip()]
    tether = Tether(str(db))
    (run,) = tether.runs()
    assert run.agent == f"{billing}:billing"  # any worker, from any directory, finds it
    first = await tether.drive(run.id)
    assert first.status == "waiting" and "signal 'approved'" in (first.reason or "")
    tether.signal(run.id, "approved", {"by": "ann"})
    second = await tether.drive(run.id)
    assert second.status == "waiting" and second.wake_at is not None  # the one-hour timer
    kinds = [e.kind for e in tether.events(run.id)]
    assert kinds.count("step_completed") == 1 and "timer_started" in kinds
    assert queued(db) == runs  # executing it imported the file again: still one run
    tether.close()
