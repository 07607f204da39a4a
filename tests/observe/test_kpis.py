"""Agent KPIs from real journals, checked against figures worked out by hand from the script."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tether import Context, Tether
from tether.models import ScriptedModel
from tether.observe import AgentKpis, KpiReport, collect_kpis, parse_since, run_kpis
from tether.observe.kpis import SinceError

from . import test_kpis_support as S

WINDOW = 128_000  # gpt-4o-mini's published context window


def by_agent(report: KpiReport) -> dict[str, AgentKpis]:
    return {a.agent.rsplit(":", 1)[-1]: a for a in report.agents}


async def test_shop_kpis_match_the_hand_computed_figures(db_path: str) -> None:
    await S.build(db_path)
    t = Tether(db_path)
    try:
        report = collect_kpis(t.store)
    finally:
        t.close()
    assert report.runs == 3 and not report.truncated
    shop = by_agent(report)["shop"]
    tokens_in = 1000 + 2000 + 3000 + 4000 + 5000 + 6000 + 7000
    tokens_out = 20 + 6 * 10
    assert (shop.runs, shop.statuses) == (1, {"halted": 1})
    assert (shop.tokens_in, shop.tokens_out) == (tokens_in, tokens_out) == (28_000, 80)
    assert shop.tokens_per_task == 28_080
    assert shop.cost_usd == pytest.approx(7 * 0.001) and shop.cost_per_task == shop.cost_usd
    # 7 replies; 6 tool calls: lookup A-1, drop_table (refused), flaky (fails), lookup B-2 x3
    # (lookup C-3 was proposed by the 7th reply but the budget halted the run before it)
    assert (shop.model_calls, shop.tool_calls, shop.model_errors) == (7, 6, 0)
    assert shop.thought_to_action == pytest.approx(7 / 6, abs=1e-4)
    assert shop.loop_interventions == 1
    assert (shop.budget_halts, shop.loop_halts) == (1, 0)
    assert shop.context_pressure_max == pytest.approx(7000 / WINDOW, abs=1e-4)
    assert shop.context_pressure_mean == pytest.approx(tokens_in / 7 / WINDOW, abs=1e-4)
    assert shop.unknown_windows == []
    assert shop.plan_fidelity is None and shop.planned_steps == 0  # ReAct records no plan
    # four lookups of SLOW_S each; the scripted model answers in well under that
    assert shop.tool_s >= 4 * S.SLOW_S
    assert shop.thinking_share is not None and shop.thinking_share < 0.5
    assert shop.thinking_s == pytest.approx(shop.thinking_share * (shop.thinking_s + shop.tool_s),
                                            abs=1e-3)

    answer = by_agent(report)["answer"]
    assert (answer.statuses, answer.tokens_in, answer.tool_calls) == ({"succeeded": 1}, 500, 0)
    assert answer.thought_to_action is None  # no action: no ratio, not a division by zero

    tools = {k.tool: k for k in report.tools}
    assert set(tools) == {"lookup", "drop_table", "flaky"}
    lookup, drop, flaky = tools["lookup"], tools["drop_table"], tools["flaky"]
    assert (lookup.calls, lookup.ok, lookup.p_success) == (5, 5, 1.0)  # 4 in shop, 1 elsewhere
    assert lookup.mean_s is not None and lookup.mean_s >= S.SLOW_S
    assert (drop.calls, drop.refused, drop.p_success, drop.refused_by) == (
        1, 1, None, {"policy": 1})
    assert (flaky.calls, flaky.errors, flaky.p_success) == (1, 1, 0.0)
    assert flaky.error_types == {"execution_error": 1}


async def test_tenant_and_since_select_the_runs(db_path: str) -> None:
    s = await S.build(db_path)
    t = Tether(db_path)
    try:
        acme = collect_kpis(t.store, tenant="acme")
        globex = collect_kpis(t.store, tenant="globex")
        later = collect_kpis(t.store, since=s.between)
        later_acme = collect_kpis(t.store, since=s.between, tenant="acme")
        one = collect_kpis(t.store, agent=t.get(s.answer).agent)
        newest = collect_kpis(t.store, limit=1)
        exactly = collect_kpis(t.store, limit=3)
    finally:
        t.close()
    assert sorted(by_agent(acme)) == ["answer", "shop"] and acme.runs == 2
    assert {k.tool: k.calls for k in acme.tools}["lookup"] == 4
    assert sorted(by_agent(globex)) == ["elsewhere"] and globex.runs == 1
    assert sorted(by_agent(later)) == ["answer", "elsewhere"]
    assert sorted(by_agent(later_acme)) == ["answer"]
    assert sorted(by_agent(one)) == ["answer"]
    assert newest.runs == 1 and newest.truncated
    assert exactly.runs == 3 and not exactly.truncated  # all there are: nothing left out
    assert acme.to_json()["filters"]["tenant"] == "acme"


def test_since_takes_durations_and_dates() -> None:
    now = 1_800_000_000.0
    assert parse_since("1h", now) == now - 3600
    assert parse_since("90s", now) == now - 90
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert parse_since("2026-12-01T08:00+01:00", now) == datetime(
        2026, 12, 1, 7, tzinfo=UTC).timestamp()
    for bad in ("yesterday", "1y", "-1h", ""):
        with pytest.raises(SinceError, match="neither a duration nor a date"):
            parse_since(bad, now)


# -- a planning agent that waits half-way: resumed, its first half replays ------------------------
PLANNER: dict[str, Any] = {}


async def planner(ctx: Context, orders: list[str]) -> str:
    ctx.annotate("plan", {"steps": [f"lookup {o}" for o in orders]})
    await ctx.model(PLANNER["model"], [{"role": "user", "content": "plan the lookups"}])
    await ctx.tool(S.registry, "lookup", {"order": orders[0]})
    await ctx.wait_for("go")  # the run is a row until the signal arrives; then it replays
    await ctx.tool(S.registry, "lookup", {"order": orders[1]})
    return "two of three done"


async def test_a_resumed_run_counts_each_step_once_and_plan_fidelity(db_path: str) -> None:
    PLANNER["model"] = ScriptedModel([S.reply("ok", tokens=(10, 2), cost=0.0)], name=S.MODEL)
    t = Tether(db_path)
    try:
        run = await t.run(planner, ["A", "B", "C"])
        assert run.status == "waiting"
        t.signal(run.id, "go", None)
    finally:
        t.close()
    t = Tether(db_path)  # another client: a fresh worker replays the first half
    try:
        run = await t.drive(run.id)
        events = t.events(run.id)
    finally:
        t.close()
    assert run.status == "succeeded"
    assert any(e.kind == "run_resumed" for e in events)
    kpis = run_kpis(events)
    assert (kpis.model_calls, kpis.tool_calls, kpis.tokens_in) == (1, 2, 10)
    assert kpis.planned_steps == 3 and kpis.plan_fidelity == pytest.approx(2 / 3, abs=1e-4)


async def test_an_unknown_context_window_is_named_not_guessed(db_path: str) -> None:
    PLANNER["model"] = ScriptedModel([S.reply("ok", tokens=(3000, 2), cost=0.0)],
                                     name="acme-llm")
    t = Tether(db_path)
    try:
        run = await t.run(planner, ["A", "B"])  # waits for "go": one call is enough
        events = t.events(run.id)
    finally:
        t.close()
    unknown = run_kpis(events)
    assert unknown.context_pressure_max is None and unknown.unknown_windows == ["acme-llm"]
    known = run_kpis(events, context_windows={"acme-llm": 6000})
    assert known.context_pressure_max == 0.5 and known.unknown_windows == []
