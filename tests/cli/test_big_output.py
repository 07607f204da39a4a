"""`tether show --full` and `tether runs` on runs with values of megabytes: bounded output
that says where the whole value is. Before, `show --full` on a 20 MB event printed nothing
for minutes while growing to gigabytes, and one long error made every `tether runs` slow."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tether import Context, Tether

from .cli_support import tether


async def big(ctx: Context, inp: Any) -> str:
    return str(await ctx.step("report", lambda: "row;" * 750_000))  # 3 MB


async def loud(ctx: Context, inp: Any) -> None:
    raise RuntimeError("the service said: " + "no " * 100_000)


def test_show_full_and_runs_stay_bounded_on_big_values(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Tether(db)
    try:
        done = asyncio.run(t.run(f"{__name__}:big", None))
        failed = asyncio.run(t.run(f"{__name__}:loud", None))
    finally:
        t.close()
    assert (done.status, failed.status) == ("succeeded", "failed")

    full = tether("show", done.id, "--full", db=db)
    assert len(full.stdout) < 600_000
    assert "more characters: tether show RUN --json" in full.stdout
    whole = tether("show", done.id, "--json", db=db)
    assert len(whole.stdout) > 3_000_000  # the whole value is there

    listed = tether("runs", db=db)
    assert len(listed.stdout) < 5_000 and "RuntimeError: the service said: no no" in listed.stdout


async def many_steps(ctx: Context, n: int) -> int:
    for i in range(n):
        await ctx.step(f"s{i}", lambda i=i: i, pure=True)
    return n


def test_show_draws_the_ends_of_a_long_journal_unless_all(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Tether(db)
    try:
        run = asyncio.run(t.run(f"{__name__}:many_steps", 1000))
        events = len(t.events(run.id))
    finally:
        t.close()
    shown = tether("show", run.id, db=db)
    assert f"{events - 250:,} events not shown (--all)" in shown.stdout
    assert " s0 " in shown.stdout and " s999 " in shown.stdout and " s500 " not in shown.stdout
    assert "status: succeeded" in shown.stdout
    every = tether("show", run.id, "--all", db=db)
    assert " s500 " in every.stdout and "not shown" not in every.stdout
