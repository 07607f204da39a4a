"""Budgets across `tether worker` processes: a parent's children run in several processes and
still share its budget, and a step re-run after its worker was killed is counted once.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tether import Tether

from .agents_hostile_budgets import MODULE, ROOT, budget_spend, journaled, tree_of
from .test_e2e_workers_governed import WorkerProcess, workers  # noqa: F401 (a fixture)


def worker_process(env: dict[str, str], concurrency: int, lease_ttl: float = 30.0
                   ) -> WorkerProcess:
    return WorkerProcess(env, "--concurrency", str(concurrency), "--lease-ttl", str(lease_ttl))


@pytest.mark.slow
@pytest.mark.parametrize("children,limit", [(8, 5), (6, 2)])
async def test_children_in_several_worker_processes_share_the_parents_budget(
        tmp_path: Path, workers: list[WorkerProcess],  # noqa: F811 (the imported fixture)
        children: int, limit: int) -> None:
    db = str(tmp_path / "t.db")
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "TETHER_DB": db, "TETHER_TEST_LEDGER": str(ledger),
           "TETHER_TEST_SPEND_S": "0.2", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    t = Tether(db)
    for _ in range(4):  # 4 processes x 2 runs: the children are spread over the processes
        workers.append(worker_process(env, concurrency=2))
    for w in workers:  # every process serves before there is work to share
        assert w.proc.stdout is not None and "serving" in w.proc.stdout.readline()
    root_id = t.submit(f"{MODULE}:fan_out", {"children": children, "calls": 10},
                       options={"budget": {"tool_calls": limit}}, guards=f"{MODULE}:GUARDS")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not t.get(root_id).finished:
        await asyncio.sleep(0.2)
    outputs = [w.stop() for w in workers]
    assert t.get(root_id).finished, outputs
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    runs = tree_of(t, root_id)
    assert len(runs) == children + 1
    assert len(lines) <= limit, lines
    assert journaled(t, runs, "tool_calls") <= limit
    assert budget_spend(t, root_id)["tool_calls"] == journaled(t, runs, "tool_calls")
    # more than one process executed the children (so the bound held across processes)
    started_by = {e.data.get("worker") for r in runs if r.depth == 1 for e in t.events(r.id)
                  if e.kind in ("run_started", "run_resumed") and isinstance(e.data, dict)}
    assert len(started_by) >= 2, started_by
    t.close()


@pytest.mark.slow
@pytest.mark.parametrize("agent,budget,scope", [
    ("idempotent_steps", {"steps": 4}, "root"),            # a root alone: reserved in memory
    ("parent_of_idempotent", {"steps": 5}, "child"),       # a child: reserved in the store
])
async def test_an_effect_run_again_after_a_crash_is_counted_once(
        tmp_path: Path, workers: list[WorkerProcess],  # noqa: F811 (the imported fixture)
        agent: str, budget: dict[str, int], scope: str) -> None:
    """The last step a budget allows is in doubt when its worker is killed; the next worker
    runs it again (it is idempotent). Its reservation was made once: the run finishes within
    the budget, and the counters hold each step once."""
    db = str(tmp_path / "t.db")
    ledger = tmp_path / "ledger.txt"
    env = {**os.environ, "TETHER_DB": db, "PYTHONPATH": str(ROOT)}
    spec = {"n": 4, "crash_at": 3, "ledger": str(ledger)}
    t = Tether(db)
    root_id = t.submit(f"{MODULE}:{agent}", spec, options={"budget": budget},
                       guards=f"{MODULE}:GUARDS")
    first = worker_process(env, concurrency=4, lease_ttl=1.0)
    workers.append(first)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "start 3" not in (
            ledger.read_text() if ledger.exists() else ""):
        await asyncio.sleep(0.05)
    first.proc.kill()  # mid-step: the step is journaled as started, its outcome is not
    first.proc.wait()
    workers.append(worker_process(env, concurrency=4, lease_ttl=1.0))
    while time.monotonic() < deadline + 60 and not t.get(root_id).finished:
        await asyncio.sleep(0.1)
    root = t.get(root_id)
    runs = tree_of(t, root_id)
    assert root.status == "succeeded", (root.status, root.reason, root.error)
    assert ledger.read_text().splitlines() == ["start 0", "start 1", "start 2", "start 3",
                                               "start 3"]
    runner = next(r for r in runs if r.depth == (0 if scope == "root" else 1))
    assert runner.result == [0, 1, 2, 3]
    steps = journaled(t, runs, "steps")
    assert steps == budget["steps"]
    if scope == "child":  # the counters in the store hold the re-run step once
        assert budget_spend(t, root_id)["steps"] == steps
