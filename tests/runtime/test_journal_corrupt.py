"""A run whose journal holds an event that cannot be read back (its data changed outside Tether)
waits with the reason — which event of which run, and what to do — instead of being taken up at
every lease expiry, each time dying with a bare `JSONDecodeError` traceback; `tether show` says
the same in one line. On both store backends."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.pg_support import raw_sql
from tether import Context, Tether
from tether.store import JournalCorrupt

ROOT = Path(__file__).resolve().parents[2]


async def two_steps(ctx: Context, x: int) -> int:
    a: int = await ctx.step("a", lambda: x + 1)
    await ctx.sleep(1.5)
    b: int = await ctx.step("b", lambda: a * 2)
    return b


async def test_a_run_whose_journal_cannot_be_read_waits_saying_which_event(
        tether: Tether, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    run_id = tether.submit(two_steps, 1)
    await tether.worker(poll_interval=0.05).serve(
        until=lambda: tether.get(run_id).status == "waiting")  # on its timer
    first = tether.get(run_id)
    (done,) = [e for e in tether.events(first.id) if e.kind == "step_completed"]
    raw_sql(tether.store, "UPDATE events SET data=? WHERE run_id=? AND seq=?",
            (b"{not json", first.id, done.seq))
    with pytest.raises(JournalCorrupt, match=rf"event {done.seq} \(step_completed\) of run "
                       rf"{first.id} .* is not valid JSON"):
        tether.events(first.id)
    worker = tether.worker(poll_interval=0.05, lease_ttl=0.5)
    await asyncio.sleep(1.6)  # the timer is due
    await asyncio.wait_for(worker.serve(until=lambda: bool(tether.get(first.id).reason or "")
                                        and "journal" in (tether.get(first.id).reason or "")),
                           30)
    await asyncio.sleep(1.5)  # a few more lease periods: nobody takes it up again meanwhile
    run = tether.get(first.id)
    assert run.status == "waiting" and run.attempts == 2, run
    assert f"cannot read the run's journal: event {done.seq} (step_completed)" in run.reason
    assert "restore it from a backup" in run.reason
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "its execution failed" in m], messages


def test_tether_show_names_the_unreadable_event(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    t = Tether(db)
    try:
        run = asyncio.run(t.run(two_steps, 1))
        raw_sql(t.store, "UPDATE events SET data=? WHERE run_id=? AND kind='step_completed'",
                (b"[1, 2", run.id))
    finally:
        t.close()
    shown = subprocess.run([sys.executable, "-m", "tether", "show", run.id, "--db", db],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode != 0
    out = shown.stdout + shown.stderr
    assert "(step_completed) of run" in out and "is not valid JSON" in out, out
    assert "Traceback" not in out, out


async def one_step(ctx: Context, x: int) -> int:
    result: int = await ctx.step("a", lambda: x + 1)
    return result


async def test_a_run_whose_record_cannot_be_read_stops_no_worker_and_no_other_run(
        tether: Tether) -> None:
    """Before, its claim raised `JSONDecodeError` out of `Worker.serve`: `tether worker`
    exited, on every restart again, and no other run of the database was executed."""
    bad = tether.submit(one_step, 1)
    good = tether.submit(one_step, 2)
    raw_sql(tether.store, "UPDATE runs SET input=? WHERE id=?", (b"{oops", bad))
    worker = tether.worker(poll_interval=0.05, lease_ttl=0.5)
    await asyncio.wait_for(worker.serve(until=lambda: tether.get(good).finished), 30)
    assert (tether.get(good).status, tether.get(good).result) == ("succeeded", 3)
    with pytest.raises(JournalCorrupt, match=rf"the input of run {bad} .*not valid JSON"):
        tether.get(bad)
    status, reason = _status_and_reason(tether, bad)  # read around the unreadable column
    assert status == "waiting" and f"cannot read the run: the input of run {bad}" in reason
    # a listing shows it, with why, beside the others (before: one bad row, no listing at all)
    listed = {r.id: r for r in tether.store.list_runs()}
    assert listed[good].result == 3 and listed[bad].status == "waiting"
    assert f"the input of run {bad} cannot be read" in (listed[bad].error or "")


def _status_and_reason(t: Tether, run_id: str) -> tuple[str, str]:
    url = getattr(t.store, "url", "")
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT status, reason FROM runs WHERE id=%s",
                               (run_id,)).fetchone()
    else:
        conn = sqlite3.connect(t.store.path)  # type: ignore[attr-defined]
        try:
            row = conn.execute("SELECT status, reason FROM runs WHERE id=?",
                               (run_id,)).fetchone()
        finally:
            conn.close()
    assert row is not None
    return str(row[0]), str(row[1])


def test_tether_runs_lists_a_run_whose_record_cannot_be_read_beside_the_others(
        tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    t = Tether(db)
    try:
        good = asyncio.run(t.run(one_step, 1))
        bad = asyncio.run(t.run(one_step, 2))
        raw_sql(t.store, "UPDATE runs SET options=? WHERE id=?", (b"{oops", bad.id))
    finally:
        t.close()
    shown = subprocess.run([sys.executable, "-m", "tether", "runs", "--db", db],
                           cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert good.id in shown.stdout and bad.id in shown.stdout, shown.stdout
    assert "the options of run" in shown.stdout and "cannot be read" in shown.stdout
