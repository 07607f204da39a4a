"""PostgreSQL crash hunt: clocks and leases. Leases and timers go by the server's clock
(`PostgresStore.now`, `ServerClock`: the server's clock as last read, every `CLOCK_REFRESH_S`
= 10 s, gone on by the monotonic clock), so a host whose clock is constantly wrong changes
nothing (tests/runtime/test_clock_skew.py). Here a host's clock is *stepped* while its worker
runs (an NTP correction, a VM resumed from a snapshot, `date -s`). Before: `now` was the host's
wall clock plus the last offset, so until the next reading the worker judged (or wrote) leases
off by the step, took a live run and ran a step twice.

A server of the module's own (`pg_crash_hunt_support.PrivatePg`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.crash_hunt_support import MODULE

from .pg_crash_hunt_support import (
    PgLab,
    PrivatePg,
    lab_fixture,  # noqa: F401 (a fixture)
    server_fixture,  # noqa: F401 (a fixture)
    skewed_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


def _ends_untouched(lab: PgLab, run_id: str, gate: str) -> None:
    """The operator looks first (as one would, told a step is in doubt because "the worker
    stopped while it ran"): the ledger shows no effect yet, so --retry. Then the worker held
    in `gate` goes on, and the run ends. Required: what an undisturbed run shows — one
    attempt, nothing in doubt, every effect once."""
    token_of = lambda r: ["j1", "j2"][int(r.options["in_doubt"]["key"]) - 1]  # noqa: E731
    lab.settle(lambda: lab.tether.get(run_id).options.get("in_doubt"), 3.0)
    decisions = lab.settle_all(token_of, cli=False)
    lab.release(gate)
    run, later = lab.finish_with_human(run_id, token_of, 30)
    kinds = [e.kind for e in lab.tether.events(run_id)]
    print(decisions + later, kinds, lab.tokens())
    lab.assert_exactly_once(["j1", "j2"])
    assert (run.status, run.result) == ("succeeded", ["did j1", "did j2"])
    assert decisions + later == [] and "step_in_doubt" not in kinds, (decisions, kinds)
    assert run.attempts == 1 and "run_resumed" not in kinds, kinds


@pytest.mark.timeout(60)
def test_a_worker_whose_clock_steps_ahead_takes_no_live_run(lab: PgLab, server: PrivatePg,
                                                            tmp_path: Path) -> None:
    """A healthy worker executes a step (held in it by a gate, renewing its lease); a second
    worker's host clock steps 120 s ahead just after it started serving (its store measured
    the offset to the server's clock when it opened)."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["j1", "j2"]})
    lab.arm("j1.before")
    healthy = lab.worker()
    assert lab.reached("j1.before") == healthy.pid
    skew = tmp_path / "skew"
    jumper = skewed_worker(lab, skew)
    # it serves (and listens) once its store is open, which measured the offset to the server
    lab.wait_until(lambda: len(server.execute(
        "SELECT 1 FROM pg_stat_activity WHERE starts_with(query, 'LISTEN ')")) == 2,
        "the second worker to serve")
    skew.write_text("120")
    # it claims within a second of the step (its wake-up: the healthy lease's expiry)
    lab.settle(lambda: jumper.pid in lab.lease_holders(), 4.0)
    _ends_untouched(lab, run_id, "j1.before")


@pytest.mark.timeout(60)
def test_a_worker_whose_clock_steps_back_keeps_its_run(lab: PgLab, server: PrivatePg,
                                                      tmp_path: Path) -> None:
    """The worker executing the step has its host clock stepped 120 s back: its renewals
    must keep its lease alive for the healthy worker started next."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["j1", "j2"]})
    lab.arm("j1.before")
    skew = tmp_path / "skew"
    jumper = skewed_worker(lab, skew)
    assert lab.reached("j1.before") == jumper.pid
    skew.write_text("-120")
    healthy = lab.worker()
    lab.settle(lambda: healthy.pid in lab.lease_holders(), 4.0)
    _ends_untouched(lab, run_id, "j1.before")
