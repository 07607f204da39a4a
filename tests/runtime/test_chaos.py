"""The chaos test: SIGKILL real worker processes at random moments while they run durable agents.

200 trials (one trial = one root run of `chaos_agents.trial` with its child runs: ~9 activities,
timers, a gather, children; 24 trials in flight at a time) on one SQLite file; 3 worker processes
with a 1s lease; a SIGKILL every 0.05s on average (at most 0.75 per trial), each followed by a
replacement worker; and the harness acting as the human who resolves in-doubt steps from the
side-effect log. See
`chaos_harness.py` for the procedure and the invariants; `benchmarks/bench_chaos.py` runs the same
harness with 1,000 trials.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.pg_support import PgSchema

from .chaos_harness import ChaosConfig, run_chaos


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_chaos_sigkill_workers(tmp_path: Path) -> None:
    report = run_chaos(ChaosConfig(trials=200, time_limit=150.0), tmp_path)
    print(report.summary())  # shown with -s, and on failure

    assert report.violations == [], "\n".join(report.violations[:40])
    assert report.trials >= 200
    assert set(report.statuses) == {"succeeded"}
    assert report.integrity == []
    # The chaos must actually have bitten, or the invariants above prove nothing.
    assert report.kills >= 50, report.summary()
    assert report.kills_mid_step >= 10, report.summary()
    assert report.in_doubt_flags >= 10, report.summary()
    assert report.resolved_skip >= 1 and report.resolved_retry >= 1, report.summary()
    assert report.idempotent_reexecutions >= 10, report.summary()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_chaos_sigkill_workers_running_one_run_each(tmp_path: Path) -> None:
    """Workers that hold one run at a time commit that run's writes inline on its own thread
    (the group committer's lone-run path) instead of handing them to the committer thread:
    the same invariants must hold when those workers are killed."""
    report = run_chaos(ChaosConfig(trials=100, concurrency=1, in_flight=12, time_limit=150.0),
                       tmp_path)
    print(report.summary())

    assert report.violations == [], "\n".join(report.violations[:40])
    assert report.trials >= 100
    assert set(report.statuses) == {"succeeded"}
    assert report.integrity == []
    assert report.kills >= 25, report.summary()
    assert report.kills_mid_step >= 5, report.summary()
    assert report.in_doubt_flags >= 5, report.summary()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chaos_sigkill_workers_on_postgres(tmp_path: Path) -> None:
    """The same chaos on the PostgreSQL store (issue 18): 4 worker processes against one
    database, claiming with SKIP LOCKED, fenced under the run's row lock."""
    schema = PgSchema()
    try:
        report = run_chaos(ChaosConfig(trials=200, workers=4, time_limit=200.0), tmp_path,
                           db=schema.url)
    finally:
        schema.drop()
    print(report.summary())

    assert report.violations == [], "\n".join(report.violations[:40])
    assert report.trials >= 200
    assert set(report.statuses) == {"succeeded"}
    assert report.integrity == []
    assert report.kills >= 50, report.summary()
    assert report.kills_mid_step >= 10, report.summary()
    assert report.in_doubt_flags >= 10, report.summary()
    assert report.resolved_skip >= 1 and report.resolved_retry >= 1, report.summary()
    assert report.idempotent_reexecutions >= 10, report.summary()
