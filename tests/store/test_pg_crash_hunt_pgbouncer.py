"""PostgreSQL crash hunt behind PgBouncer in transaction mode (a pooler of the module's own, in
front of a server of its own): each transaction may run on another server session, LISTEN does
not work (workers poll), psycopg's prepared statements are turned off at the first collision.
The same SIGKILLs and the same freeze past a lease as `test_pg_crash_hunt_kills.py`: a worker
killed mid-transaction leaves PgBouncer a server session inside a transaction, which it must
roll back before handing the session to another client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.crash_hunt_support import DELAY_ENV

from .pg_crash_hunt_support import (
    PgLab,
    PrivateBouncer,
    PrivatePg,
    Workload,
    frozen_then_thawed,
    hunt,
)

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture(scope="module")
def pooler() -> Iterator[tuple[PrivatePg, PrivateBouncer]]:
    pg = PrivatePg()
    try:
        bouncer = PrivateBouncer(pg)
    except BaseException:
        pg.close()
        raise
    yield pg, bouncer
    bouncer.close()
    pg.close()


@pytest.fixture
def lab(pooler: tuple[PrivatePg, PrivateBouncer], tmp_path: Path) -> Iterator[PgLab]:
    pg, bouncer = pooler
    name = pg.new_database()
    pg.execute(f"ALTER DATABASE {name} SET jit = off")  # as scaling.md advises behind a pooler
    lab = PgLab(tmp_path, bouncer.url(name), monitor_url=pg.url(name))
    yield lab
    lab.close()


@pytest.mark.timeout(90)
def test_four_workers_behind_pgbouncer_sigkilled_at_random(lab: PgLab) -> None:
    lab.env[DELAY_ENV] = "40"
    # 46 roots, 58 runs with the children: workers poll here (no LISTEN through a pooler)
    work = Workload(lab, pipelines=24, signalled=6, timed=6, parents=6, governed=4)
    counts = hunt(lab, work, workers=4, kills=10, seed=21, timeout=55)
    print(counts)
    assert lab.kills >= 10, counts  # the workload is held open until they landed
    work.check()


@pytest.mark.timeout(60)
def test_a_worker_frozen_past_its_lease_behind_pgbouncer_commits_nothing_after_the_takeover(
        lab: PgLab) -> None:
    run_id, _frozen, events_before = frozen_then_thawed(lab, "after")
    time.sleep(2.0)  # the thawed worker's heartbeat and its refused completion
    assert len(lab.tether.events(run_id)) == events_before
    assert lab.settle_in_doubt(run_id, "z2", cli=False) == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did z1", "did z2", "did z3"]
    lab.assert_exactly_once(["z1", "z2", "z3"])
    assert lab.journal_violations(run_id) == []
