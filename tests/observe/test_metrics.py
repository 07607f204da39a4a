"""OpenTelemetry metrics of real runs: names, attributes and values read back through the SDK's
InMemoryMetricReader, each run counted once across a resume and a retry."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tether import Tether
from tether.models import ScriptedModel
from tether.observe import export_metrics_live, record_run_metrics
from tether.observe.metrics import TOKEN_BUCKETS

from . import test_kpis as K
from . import test_kpis_support as S

Points = dict[str, list[tuple[dict[str, Any], Any]]]


def meter() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def points(reader: InMemoryMetricReader) -> Points:
    """metric name -> [(attributes, data point)]."""
    out: Points = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.setdefault(m.name, []).append((dict(p.attributes), p))
    return out


def where(found: Points, name: str, **attrs: Any) -> list[Any]:
    """The data points of `name` whose attributes include `attrs` (dots written as __)."""
    want = {k.replace("__", "."): v for k, v in attrs.items()}
    return [p for a, p in found.get(name, []) if all(a.get(k) == v for k, v in want.items())]


def shop(agent: str = "shop") -> str:
    return f"tests.observe.test_kpis_support:{agent}"


async def test_metrics_of_real_runs(db_path: str) -> None:
    provider, reader = meter()
    await S.build(db_path, meter_provider=provider)
    found = points(reader)

    tokens_in = where(found, "gen_ai.client.token.usage", gen_ai__token__type="input",
                      tether__agent=shop())
    assert len(tokens_in) == 1
    (p,) = tokens_in
    assert (p.count, p.sum) == (7, 28_000)  # 7 model calls, hand-summed in test_kpis
    assert tuple(p.explicit_bounds) == TOKEN_BUCKETS  # the conventions' boundaries
    attrs = next(a for a, q in found["gen_ai.client.token.usage"] if q is p)
    assert attrs == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "gpt-4o-mini",
                     "gen_ai.response.model": "gpt-4o-mini", "gen_ai.token.type": "input",
                     "tether.agent": shop(), "tether.tenant": "acme"}
    (out,) = where(found, "gen_ai.client.token.usage", gen_ai__token__type="output",
                   tether__agent=shop())
    assert (out.count, out.sum) == (7, 80)
    (duration,) = where(found, "gen_ai.client.operation.duration", tether__agent=shop())
    assert duration.count == 7 and 0 < duration.sum < 7 * S.SLOW_S

    def calls(tool: str, outcome: str) -> int:
        return sum(p.value for p in where(found, "tether.tool.calls", gen_ai__tool__name=tool,
                                          tether__tool__outcome=outcome))

    assert (calls("lookup", "ok"), calls("drop_table", "refused"), calls("flaky", "error")) == (
        5, 1, 1)
    assert calls("lookup", "error") == 0
    (flaky,) = where(found, "tether.tool.calls", gen_ai__tool__name="flaky")
    assert next(a for a, q in found["tether.tool.calls"] if q is flaky)["error.type"] == (
        "execution_error")
    (lookups,) = where(found, "tether.tool.duration", gen_ai__tool__name="lookup",
                       tether__agent=shop())
    assert lookups.count == 4 and lookups.sum >= 4 * S.SLOW_S
    assert not where(found, "tether.tool.duration", gen_ai__tool__name="drop_table")  # never ran

    assert [p.value for p in where(found, "tether.task.runs", tether__agent=shop(),
                                   tether__run__status="halted")] == [1]
    assert [p.value for p in where(found, "tether.guard.halts", tether__guard="budget")] == [1]
    assert [p.value for p in where(found, "tether.loop.interventions")] == [1]
    (tpt,) = where(found, "tether.task.tokens", tether__agent=shop())
    assert (tpt.count, tpt.sum) == (1, 28_080)
    (cost,) = where(found, "tether.task.cost", tether__agent=shop())
    assert cost.sum == pytest.approx(0.007)
    (ratio,) = where(found, "tether.task.thought_to_action", tether__agent=shop())
    assert ratio.sum == pytest.approx(7 / 6, abs=1e-4)
    (pressure,) = where(found, "tether.context.pressure", tether__agent=shop())
    assert pressure.count == 7 and pressure.sum == pytest.approx(28_000 / K.WINDOW)
    assert not where(found, "tether.task.plan_fidelity")  # ReAct journals no plan
    # other tenants' runs are their own series
    (other,) = where(found, "gen_ai.client.token.usage", gen_ai__token__type="input",
                     tether__tenant="globex")
    assert (other.count, other.sum) == (2, 700)


async def test_a_resumed_run_is_recorded_once(db_path: str) -> None:
    provider, reader = meter()
    K.PLANNER["model"] = ScriptedModel([S.reply("ok", tokens=(10, 2), cost=0.0)], name=S.MODEL)
    t = Tether(db_path)
    live = export_metrics_live(t, provider)
    try:
        run = await t.run(K.planner, ["A", "B", "C"])
        assert run.status == "waiting"
        t.signal(run.id, "go", None)
    finally:
        assert live is not None
        live.close()
        t.close()
    assert live.recorded == 0  # it waited: nothing ended, nothing recorded
    t = Tether(db_path)  # another worker resumes it: the first half replays
    live = export_metrics_live(t, provider)
    try:
        run = await t.drive(run.id)
    finally:
        assert live is not None
        live.close()
        events = t.events(run.id)
        t.close()
    assert run.status == "succeeded" and live.recorded == 1
    found = points(reader)
    (usage,) = where(found, "gen_ai.client.token.usage", gen_ai__token__type="input")
    assert (usage.count, usage.sum) == (1, 10)  # one model call, not one per replay
    assert sum(p.value for p in where(found, "tether.tool.calls")) == 2
    (fidelity,) = where(found, "tether.task.plan_fidelity")
    assert fidelity.sum == pytest.approx(2 / 3, abs=1e-4)
    # asked again for the same ended journal, a recorder counts it again: the live exporter
    # asks once per end; this shows the test above would have seen a double count
    assert record_run_metrics(events, meter_provider=provider)
    (usage,) = where(points(reader), "gen_ai.client.token.usage", gen_ai__token__type="input")
    assert usage.count == 2


async def test_a_retried_run_records_only_its_new_attempt(db_path: str) -> None:
    provider, reader = meter()
    s = await S.build(db_path, meter_provider=provider)
    t = Tether(db_path, guards=S.GUARDS_REF, lease_ttl=5.0)
    live = export_metrics_live(t, provider)
    try:
        t.retry(s.shop, budget={"tokens_in": 1_000_000})
        run = await t.drive(s.shop)
    finally:
        assert live is not None
        live.close()
        t.close()
    assert run.status == "succeeded"
    found = points(reader)
    # the first attempt's 7 calls were recorded at its halt; the retry replays them and makes
    # one more (the 8th reply, 1 token in): 8 in all, not 7 + 8
    (usage,) = where(found, "gen_ai.client.token.usage", gen_ai__token__type="input",
                     tether__agent=shop())
    assert (usage.count, usage.sum) == (8, 28_001)
    # lookup C-3, halted before it ran the first time, runs in the second attempt
    assert sum(p.value for p in where(found, "tether.tool.calls", tether__agent=shop(),
                                      gen_ai__tool__name="lookup")) == 5
    statuses = {a["tether.run.status"]: p.value for a, p in found["tether.task.runs"]
                if a["tether.agent"] == shop()}
    assert statuses == {"halted": 1, "succeeded": 1}
    assert [p.value for p in where(found, "tether.guard.halts")] == [1]


def test_a_run_that_has_not_ended_records_nothing(db_path: str) -> None:
    provider, reader = meter()
    from tether.store import Event

    submitted = Event("r1", 1, "run_submitted", None, None, {"agent": "a", "tenant": "t"}, 1.0)
    started = Event("r1", 2, "run_started", None, None, {"worker": "w", "attempt": 1}, 1.1)
    assert not record_run_metrics([submitted, started], meter_provider=provider)
    assert points(reader) == {}
