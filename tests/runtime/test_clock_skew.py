"""Workers on hosts whose clocks disagree share one PostgreSQL store: leases and timers go by
the server's clock (`PostgresStore.now`), so a host's wrong clock changes nothing.

Why: each worker compared lease expiries and timers by its own host's clock. A `tether worker`
whose clock ran 60 s ahead (real processes here, their clocks skewed by libfaketime's
`faketime`) took a live run from the healthy worker executing it — its non-idempotent step was
stopped in doubt for a human, while the first worker still ran it — and a worker whose clock ran
behind set timers that fired a minute early."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.pg_support import PgSchema
from tether import Context, RunRecord, Tether
from tether.guards import GuardConfig, Guards

pytestmark = pytest.mark.service

HERE = "tests.runtime.test_clock_skew"
ROOT = Path(__file__).resolve().parents[2]


def _effect(tag: str) -> str:
    with open(os.environ["SKEW_LEDGER"], "a", encoding="utf-8") as fh:
        fh.write(f"{tag} by {os.getpid()}\n")
    time.sleep(6)
    return tag


async def unrepeatable(ctx: Context, tag: str) -> str:
    result: str = await ctx.step("effect", _effect, tag, idempotent=False)
    return result


async def napper(ctx: Context, seconds: float) -> float:
    started = ctx.now().timestamp()
    await ctx.sleep(seconds)
    return ctx.now().timestamp() - started


#: the guards of `budgeted` runs: a wall-time budget is measured from the run's creation
GUARDS = Guards(GuardConfig())


async def budgeted(ctx: Context, seconds: float) -> str:
    await ctx.step("before", lambda: "ok")
    await ctx.sleep(seconds)
    result: str = await ctx.step("after", lambda: "done")
    return result


@pytest.fixture
def schema() -> Iterator[PgSchema]:
    if shutil.which("faketime") is None:
        pytest.fail("faketime is not installed: `make test` installs it (Debian's faketime)")
    s = PgSchema()
    yield s
    s.drop()


def _worker(url: str, ledger: Path, skew: str | None, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tether", "worker", "--db", url, "--lease-ttl", "2",
           "--poll", "0.1"]
    if skew is not None:
        cmd = ["faketime", "-f", skew, *cmd]
    env = {**os.environ, "SKEW_LEDGER": str(ledger),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)


def _serving(log: Path) -> bool:
    """The worker printed its banner: it claims from now on."""
    return "serving" in log.read_text(errors="replace")


def _wait(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _handed_over_at_its_timer(t: Tether, run_id: str, url: str, tmp_path: Path, *,
                              first: str | None, then: str | None) -> RunRecord:
    """A worker with clock skew `first` executes the run until its timer is set and stops; one
    with skew `then` (None: the real clock) takes it from there. The run, once it ended."""
    ledger = tmp_path / "ledger.txt"
    second = None
    setter = _worker(url, ledger, first, tmp_path / "first.log")
    try:
        _wait(lambda: t.get(run_id).status == "waiting", "the timer to be set")
        _stop(setter)
        second = _worker(url, ledger, then, tmp_path / "then.log")
        _wait(lambda: t.get(run_id).finished, "the run to end")
        return t.get(run_id)
    finally:
        _stop(*(p for p in (setter, second) if p is not None))


def test_a_worker_whose_clock_runs_ahead_takes_no_live_run(schema: PgSchema,
                                                           tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    t = Tether(schema.url)
    healthy = ahead = None
    try:
        run_id = t.submit(f"{HERE}:unrepeatable", "once")
        healthy = _worker(schema.url, ledger, None, tmp_path / "healthy.log")
        _wait(lambda: ledger.read_text(), "the healthy worker to start the step")
        ahead = _worker(schema.url, ledger, "+60s", tmp_path / "ahead.log")
        _wait(lambda: _serving(tmp_path / "ahead.log"), "the second worker to serve")
        time.sleep(1.0)  # it claims every 0.1 s: by its clock the healthy lease is long gone
        assert t.get(run_id).status == "running"  # the step is still under way
        _wait(lambda: t.get(run_id).finished or t.get(run_id).status == "waiting",
              "the run to end")
        run = t.get(run_id)
        kinds = [e.kind for e in t.events(run_id)]
        assert (run.status, run.result, run.attempts) == ("succeeded", "once", 1), (run, kinds)
        assert "step_in_doubt" not in kinds and "run_resumed" not in kinds, kinds
        assert len(ledger.read_text().splitlines()) == 1  # the effect happened once
    finally:
        _stop(*(p for p in (healthy, ahead) if p is not None))
        t.close()


def test_a_timer_set_by_a_worker_whose_clock_runs_behind_fires_on_time(
        schema: PgSchema, tmp_path: Path) -> None:
    """The worker that sets the timer stops; a healthy one fires it (by the real time)."""
    t = Tether(schema.url)
    try:
        started = time.time()
        run = _handed_over_at_its_timer(t, t.submit(f"{HERE}:napper", 5.0), schema.url,
                                        tmp_path, first="-60s", then=None)
        assert run.status == "succeeded", run
        assert time.time() - started >= 5.0  # by the real clock, not a minute early
        assert 4.9 <= run.result < 30, run.result  # and the run saw the time it slept
    finally:
        t.close()


def test_a_wall_time_budget_is_not_spent_by_a_clock_that_runs_ahead(schema: PgSchema,
                                                                   tmp_path: Path) -> None:
    """A run created by a healthy worker goes on, after a timer, on one whose clock runs 60 s
    ahead: its 30 s wall-time budget has 2 s spent, not 62."""
    t = Tether(schema.url)
    try:
        run_id = t.submit(f"{HERE}:budgeted", 2.0, guards=f"{HERE}:GUARDS",
                          options={"budget": {"wall_time_s": 30}})
        run = _handed_over_at_its_timer(t, run_id, schema.url, tmp_path, first=None,
                                        then="+60s")
        assert (run.status, run.result) == ("succeeded", "done"), run
    finally:
        t.close()


def test_tether_runs_on_a_host_whose_clock_runs_ahead_shows_a_live_lease_alive(
        schema: PgSchema, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    t = Tether(schema.url)
    healthy = None
    try:
        run_id = t.submit(f"{HERE}:unrepeatable", "shown")
        healthy = _worker(schema.url, ledger, None, tmp_path / "healthy.log")
        _wait(lambda: ledger.read_text(), "the step to start")
        shown = subprocess.run(
            ["faketime", "-f", "+60s", sys.executable, "-m", "tether", "runs", "--json",
             "--db", schema.url], cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert shown.returncode == 0, shown.stderr
        (run,) = [r for r in json.loads(shown.stdout) if r["id"] == run_id]
        assert run["status"] == "running" and run["lease"]["expired"] is False, run
    finally:
        _stop(*(p for p in (healthy,) if p is not None))
        t.close()
