"""A store of real runs whose KPIs are known by hand (shared by test_kpis, test_metrics and
tests/cli/test_stats).

`shop` is the built-in ReAct strategy under real guards (policy, loop detector, budget) with real
tools, driven by a scripted model: one call refused by the policy, one that fails, a loop
intervention, then a budget halt. `answer` succeeds at once; `elsewhere` runs for another tenant.
The expected figures below are worked out from the script, not read back from the code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tether import Context, Tether
from tether.agents import react
from tether.guards import GuardConfig, Guards, LoopConfig, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.tools import ToolRegistry

GUARDS_REF = "tests.observe.test_kpis_support:GUARDS"
MODEL = "openai:gpt-4o-mini"  # a name whose context window is published (128,000 tokens)
SLOW_S = 0.05  # how long lookup takes: the tool side of the latency split

registry = ToolRegistry()


@registry.tool
def lookup(order: str) -> dict[str, Any]:
    """The status of an order."""
    time.sleep(SLOW_S)
    return {"order": order, "status": "shipped"}


@registry.tool
def flaky(n: int) -> str:
    """A service that is down."""
    raise ConnectionError("the payment service is down")


@registry.tool
def drop_table(name: str) -> str:
    """Not allowed by the policy: must never run."""
    raise AssertionError("the policy let drop_table run")


POLICY = """\
version: 1
name: kpis
rules:
  - {id: reads, tools: [lookup, flaky], effect: allow}
"""
# One Guards object per process, so its circuit breakers count `flaky`'s failures across every
# run of the test session: set out of reach, or the fifth scenario would see flaky refused by an
# open breaker instead of failing.
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "kpis.yaml"), pii=False,
                            loops=LoopConfig(repeat_calls=3), breaker_threshold=1_000_000),
                tools=registry)


def reply(text: str, *calls: Any, tokens: tuple[int, int], cost: float) -> dict[str, Any]:
    return {"text": text, "tool_calls": [c.model_dump() for c in calls],
            "finish_reason": "tool_calls" if calls else "stop",
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]}, "cost_usd": cost}


# (input, output) tokens and cost of each reply of `shop`
SHOP_USAGE = [(1000, 20), (2000, 10), (3000, 10), (4000, 10), (5000, 10), (6000, 10),
              (7000, 10)]
SHOP_COST = 0.001
SHOP_SCRIPT = [
    reply("I look the order up first.", tool_call("lookup", {"order": "A-1"}),
          tokens=SHOP_USAGE[0], cost=SHOP_COST),
    reply("", tool_call("drop_table", {"name": "orders"}), tokens=SHOP_USAGE[1], cost=SHOP_COST),
    reply("", tool_call("flaky", {"n": 1}), tokens=SHOP_USAGE[2], cost=SHOP_COST),
    # the same call three times: the loop detector intervenes before the next model call
    *[reply("", tool_call("lookup", {"order": "B-2"}), tokens=SHOP_USAGE[3 + i], cost=SHOP_COST)
      for i in range(3)],
    reply("Something else, then.", tool_call("lookup", {"order": "C-3"}), tokens=SHOP_USAGE[6],
          cost=SHOP_COST),
    reply("never asked: the budget halts the run first", tokens=(1, 1), cost=SHOP_COST),
]
# tokens_in passes 28,000 with the 7th reply: the budget halts the run before the 8th call
SHOP_BUDGET = {"tokens_in": 27_999}

ANSWER_SCRIPT = [reply("The answer is 42.", tokens=(500, 5), cost=0.0002)]
SETUP: dict[str, ScriptedModel] = {}


async def shop(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=SETUP["shop"], tools=registry, max_steps=20)


async def answer(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=SETUP["answer"], tools=registry)


# for `tether run` in a process of its own (a fresh script per process)
ONE_ANSWER = ScriptedModel(ANSWER_SCRIPT, name=MODEL)


async def answer_once(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ONE_ANSWER, tools=registry)


async def elsewhere(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=SETUP["elsewhere"], tools=registry)


@dataclass
class Scenario:
    shop: str
    answer: str
    elsewhere: str
    between: float  # a time after `shop` was created and before `answer` was


async def build(db_path: str, meter_provider: Any = None) -> Scenario:
    """The three runs, each driven to its end in this process; with `meter_provider`, their
    metrics are recorded live into it (`export_metrics_live`) as each run ends."""
    from tether.observe import export_metrics_live

    SETUP["shop"] = ScriptedModel(SHOP_SCRIPT, name=MODEL)
    SETUP["answer"] = ScriptedModel(ANSWER_SCRIPT, name=MODEL)
    SETUP["elsewhere"] = ScriptedModel(
        [reply("", tool_call("lookup", {"order": "Z-9"}), tokens=(300, 3), cost=0.0001),
         reply("Shipped.", tokens=(400, 4), cost=0.0001)], name=MODEL)
    t = Tether(db_path, guards=GUARDS_REF, lease_ttl=5.0)
    live = None if meter_provider is None else export_metrics_live(t, meter_provider)
    try:
        shop_run = await t.run(shop, "Where is my order?", tenant="acme",
                               options={"budget": SHOP_BUDGET})
        time.sleep(0.01)
        between = time.time()
        time.sleep(0.01)
        answer_run = await t.run(answer, "What is six times seven?", tenant="acme")
        other_run = await t.run(elsewhere, "Where is Z-9?", tenant="globex")
    finally:
        if live is not None:
            live.close()
        t.close()
    return Scenario(shop_run.id, answer_run.id, other_run.id, between)


def test_the_scenario_runs_as_scripted(db_path: str) -> None:
    """The runs the KPI tests count really end as the script says (else the KPIs test nothing)."""
    import asyncio

    s = asyncio.run(build(db_path))
    t = Tether(db_path)
    try:
        shop_run = t.get(s.shop)
        assert shop_run.status == "halted" and "tokens_in" in (shop_run.reason or "")
        assert len(SETUP["shop"].calls) == 7
        assert t.get(s.answer).status == "succeeded"
        assert t.get(s.elsewhere).status == "succeeded" and t.get(s.elsewhere).tenant == "globex"
    finally:
        t.close()
