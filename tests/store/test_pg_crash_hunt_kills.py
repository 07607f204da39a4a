"""PostgreSQL crash hunt: many worker processes on one database, SIGKILLed at random moments,
and a worker frozen (SIGSTOP) past its lease while another takes its run over.

A server of the module's own (`pg_crash_hunt_support.PrivatePg`); the workload mixes pipelines
of non-idempotent sends, signals, durable timers, child runs and approvals (68 runs). The test
is the operator: it answers signals, approves, and settles each in-doubt step from the ledger.
In the end every root has the result of an uninterrupted run, every effect is in the ledger
exactly once, no non-idempotent step was started again without a human's --retry, and no
journal shows two workers' writes (a seq gap, an effect completed twice, a run ended twice).
"""

from __future__ import annotations

import time

import pytest

from .pg_crash_hunt_support import (
    PgLab,
    Workload,
    frozen_then_thawed,
    hunt,
    lab_fixture,  # noqa: F401 (a fixture)
    server_fixture,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


WORKER_DELAY_MS = 40  # each step (`DELAY_ENV`): kills land inside them


@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", [11, 12])
def test_four_workers_sigkilled_at_random_over_68_runs(lab: PgLab, seed: int) -> None:
    work = Workload(lab, pipelines=30, signalled=8, timed=8, parents=6, governed=4)
    counts = hunt(lab, work, workers=4, kills=12, seed=seed, timeout=50)
    print(counts)
    assert lab.kills >= 12, counts  # the workload is held open until they landed
    work.check()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_worker_frozen_past_its_lease_commits_nothing_after_the_takeover(
        lab: PgLab, where: str) -> None:
    """Lease fencing on PostgreSQL: the thawed worker finishes its tool call (an effect a
    thread cannot be stopped from doing: `before` performs it after the takeover) but writes
    nothing more to the journal; the human settles the step from the ledger as it stands once
    the thawed worker let go."""
    run_id, frozen, events_before = frozen_then_thawed(lab, where)
    # the thawed worker's heartbeat finds the lease gone; its tool call ends (with its effect);
    # its completion is refused by the fence. Synchronise on the ledger: z2 is there.
    lab.wait_until(lambda: lab.tokens()["z2"] == 1, "the thawed worker's effect")
    time.sleep(1.5)  # a heartbeat and a commit attempt of the thawed worker
    events = lab.tether.events(run_id)
    assert len(events) == events_before, [(e.seq, e.kind, e.key) for e in events]
    assert lab.tether.get(run_id).status == "waiting"
    assert lab.settle_in_doubt(run_id, "z2", cli=False) == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did z1", "did z2", "did z3"]
    lab.assert_exactly_once(["z1", "z2", "z3"])
    lab.assert_no_silent_rerun(run_id)
    assert lab.journal_violations(run_id) == []
    # the thawed worker wrote nothing for the run after the takeover: no event of its after
    # the second worker's run_resumed, and it is still alive and serving
    assert next(p for p in lab.procs if p.pid == frozen).poll() is None
