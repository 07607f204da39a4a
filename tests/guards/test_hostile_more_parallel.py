"""One reply, many identical calls: the loop detector must not be outrun by parallelism.

The detector counts a call once it has run. One after another, the same call runs three times
(an intervention), a fourth (the halt). Before: a reply with eight identical `wire` calls — the
ReAct loop runs a reply's calls in parallel through `ctx.gather` — wired the money eight times
before the detector saw the first, then halted. Each test drives the real ReAct loop (or agent
code's own `ctx.gather`) with a scripted hostile model; `EXECUTED` counts the real transfers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tether import Tether
from tether.models import ScriptedModel, tool_call

from . import hostile_more_support as S
from .e2e_support import say

WIRE = {"to": "mallory", "amount": 100}


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    S.EXECUTED.clear()
    yield
    S.EXECUTED.clear()


def calls(name: str, args: Any, n: int) -> list[Any]:
    return [tool_call(name, args(i) if callable(args) else args).model_copy(
        update={"id": f"c{i}"}) for i in range(n)]


async def run_react(db_path: str, *replies: Any) -> Any:
    guards = S.make_guards()
    S.STATE["guards"] = guards
    S.STATE["model"] = ScriptedModel([*replies, "done"])
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        return await t.run(S.react_agent, "move the money")
    finally:
        t.close()


async def test_identical_parallel_calls_run_no_more_than_one_after_another(db_path):
    record = await run_react(db_path, say("wire, wire, wire", *calls("wire", WIRE, 8)))
    assert record.status == "halted" and "repeated_call" in record.reason, record.reason
    # what one call at a time lets through: three, then the fourth that halts
    assert len(S.executed("wire")) == 4, S.EXECUTED


async def test_the_refused_copies_are_journaled_as_the_loop_guards_answers(db_path):
    record = await run_react(db_path, say("wire, wire, wire", *calls("wire", WIRE, 8)))
    t = Tether(db_path)
    try:
        started = [e for e in t.events(record.id) if e.kind == "step_started"
                   and e.name == "tool:wire"]
    finally:
        t.close()
    refused = [e for e in started if (e.data.get("short_circuit") or {}).get("guard") == "loop"]
    assert len(started) == 8 and len(refused) == 4, [e.data for e in started]


async def test_identical_calls_one_after_another_are_unchanged(db_path):
    # the control: the sequential bound the parallel one matches
    record = await run_react(db_path, *(say(f"wire {i}", *calls("wire", WIRE, 1))
                                        for i in range(6)))
    assert record.status == "halted" and "repeated_call" in record.reason, record.reason
    assert len(S.executed("wire")) == 4


async def test_different_parallel_calls_all_run(db_path):
    record = await run_react(db_path, say("look everything up",
                                          *calls("lookup", lambda i: {"q": f"item {i}"}, 8)))
    assert record.status == "succeeded", record.error
    assert len(S.executed("lookup")) == 8


async def test_direct_parallel_calls_are_bounded_too(db_path):
    guards = S.make_guards()
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        record = await t.run(S.gather_direct, [["wire", WIRE]] * 8)
    finally:
        t.close()
    assert record.status == "halted" and "repeated_call" in record.reason, record.reason
    assert len(S.executed("wire")) == 4, S.EXECUTED
