"""ReAct stops a model that keeps proposing one identical call (issue 17 §4): without guards, the
1.5B local model called the same tool five times and ran into MaxStepsExceeded; by default the run
now stops at the third identical proposal, before it runs, with an error saying what repeated."""

from __future__ import annotations

import pytest

from tether import Tether
from tether.models import ScriptedModel, tool_call

from . import agents_react as A

GOAL = "How many people per km2 live in Japan?"


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


def japan_forever() -> ScriptedModel:
    """What the small model did: the same lookup, step after step."""
    return ScriptedModel(fn=lambda call: tool_call("lookup", {"country": "Japan"}))


async def test_an_identical_call_proposed_a_third_time_stops_the_run(tether: Tether) -> None:
    A.SETUP.update(model=japan_forever(), options={"max_steps": 8})
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "failed"
    assert "RepeatedCallLimit" in (rec.error or "")
    assert ('ReAct stopped at step 3: the model proposed lookup({"country": "Japan"}) for the '
            "3rd time (before at step(s) 1, 2)") in (rec.error or "")
    assert "examples=" in (rec.error or "") and "max_repeats" in (rec.error or "")
    assert A.CALLS["lookup"] == 2  # the third proposal did not run
    assert len(A.SETUP["model"].calls) == 3  # 3 model calls, not 8


async def test_turned_off_the_run_goes_on_to_max_steps(tether: Tether) -> None:
    A.SETUP.update(model=japan_forever(), options={"max_steps": 5, "max_repeats": None})
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "failed" and "MaxStepsExceeded" in (rec.error or "")
    assert A.CALLS["lookup"] == 5


async def test_reordered_keys_and_parallel_duplicates_are_the_same_call(tether: Tether) -> None:
    A.SETUP.update(model=ScriptedModel([
        [tool_call("divide", {"a": 1, "b": 2}), tool_call("divide", {"b": 2, "a": 1})],
        "unused",
    ]), options={"max_repeats": 2})
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "failed"
    assert 'the model proposed divide({"a": 1, "b": 2}) for the 2nd time (before at step(s) 1)' \
        in (rec.error or "")
    assert A.CALLS["divide"] == 0


async def test_a_repeat_below_the_limit_is_only_pointed_out(tether: Tether) -> None:
    A.SETUP.update(model=ScriptedModel([
        tool_call("lookup", {"country": "Japan"}),
        tool_call("lookup", {"country": "Norway"}),
        tool_call("lookup", {"country": "Japan"}),  # the 2nd time: a note, not a stop
        "Japan: 328 people/km2.",
    ]))
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "succeeded", rec.error
    assert rec.result["answer"] == "Japan: 328 people/km2."
    assert "[You made this exact call before, at step 1" in (
        rec.result["trajectory"][2]["calls"][0]["observation"])
    assert A.CALLS["lookup"] == 3


async def test_a_limit_below_two_is_refused(tether: Tether) -> None:
    A.SETUP.update(model=japan_forever(), options={"max_repeats": 1})
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "failed" and "max_repeats must be >= 2 or None, not 1" in (rec.error or "")
