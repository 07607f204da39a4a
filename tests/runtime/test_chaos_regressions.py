"""Runtime bugs found by the chaos test (`test_chaos.py`), each reduced to a minimal test.

A crash is simulated by writing the journal a killed worker leaves behind (`run_started` and a
`step_started` with no outcome); an in-process worker then picks the run up, exactly like a
replacement worker after the dead one's lease expired.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from tether import Context, Tether
from tether.store import NewEvent, dumps

STARTED: Counter[str] = Counter()
FINISHED: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    STARTED.clear()
    FINISHED.clear()


async def send(name: str, ms: float) -> str:
    """A non-idempotent activity (an e-mail, a payment without a key) that takes `ms`."""
    STARTED[name] += 1
    await asyncio.sleep(ms / 1000)
    FINISHED[name] += 1
    return f"sent {name}"


async def two_branches(ctx: Context, _: Any) -> list[Any]:
    return await ctx.gather(ctx.step("a", send, "a", 20), ctx.step("b", send, "b", 50))


def crashed_run(tether: Tether, *in_flight: str) -> str:
    """Queue a `two_branches` run whose journal is what a SIGKILLed worker leaves: the steps of
    the given branches (0 = "a", 1 = "b") were started and their outcome never recorded."""
    run_id = tether.submit(two_branches)
    now = time.time()
    events = [NewEvent(2, "run_started", None, None, dumps({"worker": "dead:1:x", "attempt": 1}),
                       now)]
    for i, branch in enumerate(in_flight):
        key = f"1:{'ab'.index(branch)}.1"
        events.append(NewEvent(3 + i, "step_started", key, branch, dumps({"attempt": 1}), now))
    tether.store.write(lambda tx: tx.append_events(run_id, events))
    return run_id


# Fixed in the gather change after f71248d. Was: gather cancels sibling branches when one branch
# raises InDoubt: the sibling's running step is interrupted (journaled as failed in d30a52f, left
# in doubt since 4836519), so one genuinely in-doubt step costs the run a second, spurious human
# decision (or the run)
async def test_in_doubt_branch_lets_its_siblings_finish(tether: Tether) -> None:
    run_id = crashed_run(tether, "a")
    rec = await tether.drive(run_id)
    assert rec.status == "waiting" and rec.options["in_doubt"]["key"] == "1:0.1"

    tether.resolve(run_id, "skip", result="sent a")  # the human saw that "a" was sent
    rec = await tether.drive(run_id)

    assert (rec.status, rec.options.get("in_doubt")) == ("succeeded", None), (
        f"one resolution should finish the run; it is {rec.status}: {rec.reason}")
    assert rec.result == ["sent a", "sent b"]
    assert STARTED["b"] == FINISHED["b"] == 1  # b was never interrupted nor repeated


# Fixed in the gather change after f71248d. Was: livelock: two in-doubt non-idempotent steps in
# sibling branches; every `resolve --retry` of one is undone by the other's InDoubt cancelling the
# retried step, forever
async def test_two_in_doubt_branches_finish_after_two_decisions(tether: Tether) -> None:
    run_id = crashed_run(tether, "a", "b")
    decisions: list[str] = []
    rec = await tether.drive(run_id)
    while rec.status == "waiting" and rec.options.get("in_doubt") and len(decisions) < 6:
        key = rec.options["in_doubt"]["key"]
        decisions.append(key)
        tether.resolve(run_id, "retry")  # the human saw that neither effect happened
        rec = await tether.drive(run_id)

    assert rec.status == "succeeded", (
        f"after decisions {decisions} the run is still {rec.status}: {rec.reason}")
    assert sorted(decisions) == ["1:0.1", "1:1.1"]
    assert dict(FINISHED) == {"a": 1, "b": 1}
