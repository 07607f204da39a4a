"""A tool call that may have acted before a crash is left in doubt for a human: its durable
start must say which call it was (its arguments), or the operator cannot decide."""

from __future__ import annotations

from typing import Any

from tether import Tether
from tether.observe.timeline import describe
from tether.runtime.effects.tool import ARGUMENTS_JOURNAL_MAX
from tether.tools import ToolRegistry

TOOLS = ToolRegistry()


@TOOLS.tool(side_effect="write")
def pay(to: str, cents: int, memo: str = "") -> str:
    """Pay someone."""
    return "paid"


@TOOLS.tool(side_effect="read", idempotent=True)
def balance(account: str) -> int:
    """Read a balance."""
    return 7


async def pays(ctx: Any, inp: dict[str, Any]) -> Any:
    await ctx.tool(TOOLS, "balance", {"account": "acme"})
    return (await ctx.tool(TOOLS, "pay", inp)).output


def starts(t: Tether, run_id: str) -> dict[str, Any]:
    return {e.name: e for e in t.events(run_id) if e.kind == "step_started"}


async def test_an_in_doubt_calls_start_names_its_arguments_and_show_prints_them(db_path):
    """The start is durable before the call runs (what a crash during it leaves is exactly
    this start: tests/runtime/test_recovery.py drives such runs to `waiting`)."""
    t = Tether(db_path)
    run = await t.run(pays, {"to": "bob", "cents": 1200})
    assert run.status == "succeeded", run.error
    started = starts(t, run.id)
    assert started["tool:pay"].data["meta"]["arguments"] == {"to": "bob", "cents": 1200}
    assert "arguments {\"to\": \"bob\", \"cents\": 1200}" in describe(started["tool:pay"])
    # a call that is safe to repeat is re-run, never in doubt: nothing extra in its start
    assert "arguments" not in started["tool:balance"].data["meta"]
    t.close()


async def test_huge_arguments_are_recorded_by_size_and_digest(db_path):
    t = Tether(db_path)
    memo = "x" * (ARGUMENTS_JOURNAL_MAX + 1)
    run = await t.run(pays, {"to": "bob", "cents": 1, "memo": memo})
    assert run.status == "succeeded", run.error
    recorded = starts(t, run.id)["tool:pay"].data["meta"]["arguments"]
    assert recorded["bytes"] > ARGUMENTS_JOURNAL_MAX and len(recorded["sha256"]) == 64
    assert memo not in str(recorded)
    t.close()
