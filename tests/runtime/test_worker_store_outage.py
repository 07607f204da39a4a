"""A worker whose claims the store refuses for a while keeps serving and claims again once the
store answers.

Why: a SQLite database locked by another program for longer than the busy timeout (a `sqlite3`
shell left in a transaction, a backup tool), or a PostgreSQL server restarting, made the claim
raise, and the exception ended `Worker.serve`. `tether worker` exited; `tether mcp serve` and
`tether serve` went on answering plain calls while nothing claimed queued runs, timers or
approvals any more."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import pytest

from tether import Context, Tether
from tether.store import SQLiteStore


async def double(ctx: Context, n: int) -> int:
    result: int = await ctx.step("double", lambda: n * 2)
    return result


async def test_claims_refused_by_a_locked_database_do_not_end_serving(
        tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    path = f"{tmp_path}/tether.db"
    t = Tether(SQLiteStore(path, busy_timeout=0.2))
    worker = t.worker(poll_interval=0.05)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        await asyncio.sleep(0.1)  # serving, its first claims done
        caplog.set_level(logging.WARNING, logger="tether.worker")
        lock.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        await asyncio.sleep(1.0)  # several claims time out meanwhile
        lock.execute("ROLLBACK")
        assert not serving.done(), f"serving ended: {serving.exception()}"
        run_id = t.submit(f"{__name__}:double", 21)  # nobody kicks: the claim loop finds it
        deadline = time.monotonic() + 20
        while not (run := t.get(run_id)).finished:
            assert not serving.done(), f"serving ended: {serving.exception()}"
            assert time.monotonic() < deadline, f"the run was never claimed: {run}"
            await asyncio.sleep(0.05)
        assert (run.status, run.result) == ("succeeded", 42)
        messages = [r.getMessage() for r in caplog.records]
        refused = [m for m in messages if "could not claim runs" in m]
        assert len(refused) == 1 and "stayed locked by another process" in refused[0], messages
        assert any("claims runs again, after" in m for m in messages), messages
    finally:
        lock.close()
        stop.set()
        worker.kick()
        await serving
        t.close()


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_lease_that_expires_at_once_is_refused(tmp_path: object, ttl: float) -> None:
    """Every claim would be stale before its first write: every worker would take every run."""
    t = Tether(f"{tmp_path}/tether.db")
    try:
        with pytest.raises(ValueError, match="lease_ttl must be more than 0 seconds"):
            t.worker(lease_ttl=ttl)
    finally:
        t.close()


async def test_a_claim_that_fails_unexpectedly_does_not_end_serving(
        tmp_path: object, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim that raised something other than the store's refusal (a bug) ended `serve`:
    an MCP or REST server around it went on answering while nobody executed its queue."""
    import tether.runtime.worker as worker_module

    real = worker_module.claim_runs
    broken = {"left": 3}

    def claim_runs(tx: object, **kwargs: object) -> object:
        if broken["left"]:
            broken["left"] -= 1
            raise KeyError("a bug in the claim")
        return real(tx, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_module, "claim_runs", claim_runs)
    caplog.set_level(logging.WARNING, logger="tether.worker")
    t = Tether(f"{tmp_path}/tether.db")
    worker = t.worker(poll_interval=0.05)
    run_id = t.submit(f"{__name__}:double", 4)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        deadline = time.monotonic() + 20
        while not (run := t.get(run_id)).finished:
            assert not serving.done(), f"serving ended: {serving.exception()}"
            assert time.monotonic() < deadline, f"the run was never claimed: {run}"
            await asyncio.sleep(0.05)
        assert (run.status, run.result) == ("succeeded", 8) and broken["left"] == 0
        refused = [r for r in caplog.records if "could not claim runs" in r.getMessage()]
        assert len(refused) == 1 and "a bug in the claim" in refused[0].getMessage()
        assert refused[0].exc_info is not None  # not the store's refusal: its traceback
    finally:
        stop.set()
        worker.kick()
        await serving
        t.close()
