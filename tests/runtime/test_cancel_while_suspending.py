"""A cancel requested while a run executes is not lost when the run then suspends.

Before: `tether cancel` on a running run only sets a flag that the worker's heartbeat reads
(about once a second); a run that suspended before the next beat (waiting for a signal, a timer
or a child) was written back as `waiting` with the flag set, and stayed so: nothing reads the
flag of a run that is not running (found by the MCP server's tasks/cancel).
"""

from __future__ import annotations

from typing import Any

import pytest

from tether import Context, Tether
from tether.store import vocabulary as v


def _cancel_myself(db: str, run_id: str) -> str:
    t = Tether(db)
    try:
        return ",".join(t.cancel(run_id, reason="stop it, operator"))
    finally:
        t.close()


async def cancelled_then_waits(ctx: Context, inp: dict[str, Any]) -> Any:
    await ctx.step("cancel", _cancel_myself, inp["db"], ctx.run_id)
    if inp["wait"] == "signal":
        return await ctx.wait_for("never")
    return await ctx.sleep(3600)


@pytest.mark.parametrize("wait", ["signal", "timer"])
async def test_a_run_cancelled_while_running_ends_cancelled_when_it_suspends(
        db_path: str, wait: str) -> None:
    db = db_path
    t = Tether(db, lease_ttl=30.0)  # the heartbeat (~1 s) comes after the suspension
    run_id = t.submit(cancelled_then_waits, {"db": db, "wait": wait})
    record = await t.drive(run_id)
    assert record.status == "cancelled", (record.status, record.reason)
    assert record.reason == "stop it, operator"
    kinds = [e.kind for e in t.events(run_id)]
    assert kinds.count(v.RUN_CANCELLED) == 1 and kinds[-1] == v.RUN_CANCELLED
    t.close()
