"""Crash hunt: a cancel requested while the run's worker is dead (SIGKILLed mid-step).

`tether cancel` on a run marked running under a lease flags it (`cancel_requested`) for its
worker to stop it; when that worker was SIGKILLed, the flag waits for whichever worker takes
the run over. That worker must stop the run, not execute more of it: the operator asked for
the cancel before any of those effects started.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .crash_hunt_support import MODULE, Lab

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def test_cancel_requested_while_the_worker_is_dead_runs_nothing_more(lab: Lab) -> None:
    tokens = [f"k{i}" for i in range(1, 7)]
    run_id = lab.tether.submit(f"{MODULE}:keyed_pipeline", {"tokens": tokens})
    lab.arm("k2.after")
    lab.worker()
    lab.kill(lab.reached("k2.after"))
    out = lab.cli("cancel", run_id).stdout
    assert lab.tether.get(run_id).cancel_requested, out
    lab.worker(lease_ttl=3.0)
    run = lab.wait(run_id, "cancelled", "succeeded", "failed")
    done = sorted(lab.tokens())
    assert run.status == "cancelled", (run.status, done)
    # k2 may be re-run (it is keyed: deduplicated); nothing after it may start
    assert done == ["k1", "k2"], f"effects performed after the cancel was requested: {done}"
