"""A run whose writes the store refuses for a while (a full disk, a database locked past its busy
timeout: `StoreUnavailable`) waits for the store and goes on where it was, in the same execution.

Why: such a write made the step raise, and the run was marked failed for a fault that was the
store's (when the store took the small `run_failed` write, e.g. once a lock was let go), or its
execution died with "Task exception was never retrieved" and a traceback, and the run sat in
`running` until its lease expired (30 s by default) and another execution replayed it. Either
way a caller waiting for it got nothing until then. A worker asked to stop meanwhile must still
stop (its run is then left to be resumed, not failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.small_disk import fill, small_disk
from tether import Context, Tether
from tether.store import SQLiteStore

STEPS = 300
PAYLOAD = 2000  # bytes per step result: 300 steps need ~0.6 MB of journal


#: `chatty` waits at its 10th step while this is set up and not yet opened: the test takes the
#: store away at a known point, however fast the machine steps (see `_paused_at_10`)
GATE: dict[str, asyncio.Event] = {}


async def chatty(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        if i == 10 and "open" in GATE:
            GATE["reached"].set()
            await GATE["open"].wait()
        out: str = await ctx.step(f"s{i}", lambda i=i: "x" * PAYLOAD + str(i), idempotent=True)
        total += len(out)
    return total


def expected(n: int) -> int:
    return sum(PAYLOAD + len(str(i)) for i in range(n))


def _check_one_clean_execution(t: Tether, run_id: str, n: int) -> None:
    run = t.get(run_id)
    assert (run.status, run.result, run.attempts) == ("succeeded", expected(n), 1), run
    events = t.store.load_events(run_id)
    kinds = [e.kind for e in events]
    assert "run_failed" not in kinds and "run_resumed" not in kinds, kinds
    completed = [e.name for e in events if e.kind == "step_completed"]
    assert completed == [f"s{i}" for i in range(n)]  # each step once, in order
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def _check_waited_out(t: Tether, run_id: str, caplog: pytest.LogCaptureFixture,
                      why: str) -> None:
    """One clean execution, one warning naming `why`, one when writes work again, and no
    traceback from asyncio."""
    _check_one_clean_execution(t, run_id, STEPS)
    messages = _store_messages(caplog)
    refused = [m for m in messages if "the store refuses writes" in m]
    assert len(refused) == 1 and why in refused[0], messages
    assert any("the store accepts writes again, after" in m for m in messages), messages
    assert not _never_retrieved(caplog)


def _store_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tether.worker"]


def _never_retrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and "never retrieved" in r.getMessage()]


async def _until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_run_waits_out_a_database_locked_past_its_busy_timeout(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = str(tmp_path / "tether.db")
    t = Tether(SQLiteStore(path, busy_timeout=0.2), lease_ttl=60)
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        async with _paused_at_10() as go_on:
            running = asyncio.create_task(t.run(chatty, STEPS))
            await asyncio.wait_for(GATE["reached"].wait(), 30)
            lock.execute("BEGIN IMMEDIATE")  # another program holds the write lock for 1.5 s:
            go_on()
            await asyncio.sleep(1.5)  # every write of the run's meanwhile is refused after 0.2 s
            assert not running.done()
            lock.execute("ROLLBACK")
        record = await asyncio.wait_for(running, 60)
        _check_waited_out(t, record.id, caplog, "stayed locked by another process")
    finally:
        lock.close()
        t.close()


@contextlib.asynccontextmanager
async def _paused_at_10() -> AsyncIterator[Callable[[], None]]:
    """Runs of `chatty` started inside wait at their 10th step until the yielded function is
    called."""
    GATE.update(reached=asyncio.Event(), open=asyncio.Event())
    try:
        yield GATE["open"].set
    finally:
        GATE["open"].set()
        GATE.clear()


@pytest.mark.slow
async def test_a_run_waits_out_a_full_disk_and_goes_on_when_space_is_freed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with small_disk(tmp_path / "disk") as disk:
        t = Tether(str(disk / "tether.db"), lease_ttl=60)
        try:
            t.store.list_runs()  # the database exists before the disk fills
            ballast = fill(disk, leave=400_000)  # the run's journal needs more
            running = asyncio.create_task(t.run(chatty, STEPS))
            await _until(lambda: any("the store refuses writes" in m
                                     for m in _store_messages(caplog)), "the disk to fill")
            assert not running.done()
            await asyncio.sleep(0.5)  # a few more tries, all refused
            ballast.unlink()
            record = await asyncio.wait_for(running, 60)
            _check_waited_out(t, record.id, caplog, "database or disk is full")
        finally:
            t.close()


async def test_a_worker_asked_to_stop_while_the_store_refuses_writes_stops_and_its_run_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing is failed for it: the run stays `running`, and the next worker finishes it."""
    caplog.set_level(logging.WARNING)
    path = str(tmp_path / "tether.db")
    t = Tether(SQLiteStore(path, busy_timeout=0.2))
    run_id = t.submit(chatty, STEPS)
    worker = t.worker(poll_interval=0.05, lease_ttl=1.0, drain_timeout=0.5)
    stop = asyncio.Event()
    lock = sqlite3.connect(path, isolation_level=None)
    async with _paused_at_10() as go_on:
        serving = asyncio.create_task(worker.serve(stop=stop))
        try:
            await asyncio.wait_for(GATE["reached"].wait(), 30)
            lock.execute("BEGIN IMMEDIATE")
            go_on()
            await asyncio.sleep(1.0)  # the run's writes are refused meanwhile
            # a write that is not the run's own fails at once meanwhile (the claim loop's,
            # the heartbeat's): they must stay free to see the stop
            with pytest.raises(Exception, match="stayed locked"):
                await worker.committer.run(lambda tx: tx.now())
            stop.set()
            worker.kick()
            await asyncio.wait_for(serving, 15)  # drained: the waiting write gave up
            lock.execute("ROLLBACK")
            run = t.get(run_id)
            assert run.status == "running", run  # not failed: resumed at lease expiry
            assert "run_failed" not in [e.kind for e in t.store.load_events(run_id)]
            assert not _never_retrieved(caplog)
            second = t.worker(poll_interval=0.05, lease_ttl=1.0)
            await asyncio.wait_for(second.serve(until=lambda: t.get(run_id).finished), 60)
            run = t.get(run_id)
            assert (run.status, run.result) == ("succeeded", expected(STEPS)), run
        finally:
            lock.close()
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, 15)
            t.close()


@pytest.mark.service
async def test_a_run_on_postgres_outlasts_its_server_going_away(
        caplog: pytest.LogCaptureFixture) -> None:
    """Every connection dropped and new ones refused for 2 s (through `TcpCut`, in front of
    the suite's real server): the run goes on once the server is back. A connection lost just
    after a COMMIT was sent leaves that write's outcome unknown: the execution then stops and
    the run is resumed from its journal (a second attempt), never failed."""
    from urllib.parse import urlsplit, urlunsplit

    from tests.store.pg_support import PgSchema
    from tests.tcp_cut import TcpCut
    from tether.store._postgres import PostgresStore

    caplog.set_level(logging.WARNING)
    schema = PgSchema()
    parts = urlsplit(schema.url)
    link = TcpCut(parts.port or 5432)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{link.port}"))
    t = Tether(PostgresStore(url, busy_timeout=0.5), lease_ttl=3)
    try:
        n = 150
        async with _paused_at_10() as go_on:
            running = asyncio.create_task(t.run(chatty, n))
            await asyncio.wait_for(GATE["reached"].wait(), 30)
            link.cut()
            go_on()
            await asyncio.sleep(2.0)
            assert not running.done()
            link.restore()
        record = await asyncio.wait_for(running, 60)
        run = t.get(record.id)
        assert (run.status, run.result) == ("succeeded", expected(n)), run
        assert run.attempts in (1, 2), run
        events = t.store.load_events(run.id)
        assert "run_failed" not in [e.kind for e in events]
        assert [e.name for e in events if e.kind == "step_completed"] == [
            f"s{i}" for i in range(n)]
        messages = _store_messages(caplog)
        assert run.attempts == 2 or any("the store refuses writes" in m for m in messages), \
            messages
        assert not _never_retrieved(caplog)
    finally:
        link.close()
        t.close()
        schema.drop()
