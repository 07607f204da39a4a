"""A signal wakes a waiting run only when the run waits for that name.

Before: any signal woke it. `tether signal R aproved` (a typo of `approved`) queued the run,
whose reason then said "signal 'aproved' arrived; queued to resume" even after the right signal
came; with a worker it was replayed for nothing. A signal of another name is still kept: a
later `wait_for` of that name receives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether import Context, Tether


async def two_waits(ctx: Context, _: Any) -> Any:
    first = await ctx.wait_for("approved")
    later = await ctx.wait_for("aproved")  # the earlier typo, kept until asked for
    return [first, later]


async def test_a_signal_of_another_name_leaves_the_run_waiting(tmp_path: Path) -> None:
    tether = Tether(tmp_path / "t.db")
    try:
        run_id = tether.submit(two_waits, None)
        run = await tether.drive(run_id)
        assert (run.status, run.reason) == ("waiting", "waiting for signal 'approved'")
        tether.signal(run_id, "aproved", "typo")
        run = tether.get(run_id)
        assert (run.status, run.reason) == ("waiting", "waiting for signal 'approved'")
        tether.signal(run_id, "approved", "yes")
        run = tether.get(run_id)
        assert (run.status, run.reason) == ("queued", "signal 'approved' arrived; queued to "
                                                      "resume")
        run = await tether.drive(run_id)
        assert (run.status, run.result) == ("succeeded", ["yes", "typo"])
    finally:
        tether.close()


async def a_then_b(ctx: Context, _: Any) -> Any:
    return [await ctx.wait_for("a"), await ctx.wait_for("b")]


async def test_each_wait_is_woken_by_its_own_name(tmp_path: Path) -> None:
    """What the run waits for is read from its journal at each signal (no copy of it kept on
    the run, which a worker of another release would not keep up to date)."""
    tether = Tether(tmp_path / "t.db")
    try:
        run_id = tether.submit(a_then_b, None)
        await tether.drive(run_id)
        tether.signal(run_id, "b", 2)  # early: kept, not a wake-up
        assert tether.get(run_id).status == "waiting"
        tether.signal(run_id, "a", 1)
        assert tether.get(run_id).status == "queued"
        run = await tether.drive(run_id)
        assert (run.status, run.result) == ("succeeded", [1, 2])
        run_id = tether.submit(a_then_b, None)
        await tether.drive(run_id)
        tether.signal(run_id, "a", 1)
        run = await tether.drive(run_id)
        assert (run.status, run.reason) == ("waiting", "waiting for signal 'b'")
        tether.signal(run_id, "b", 2)
        assert tether.get(run_id).status == "queued"
    finally:
        tether.close()
