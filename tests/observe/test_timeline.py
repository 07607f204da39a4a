"""The one timeline: built from a real guarded run's journal, shown by `tether show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.guards import agents_governed
from tether import Tether
from tether.cli import app
from tether.observe import timeline_rows, timeline_table, timeline_totals
from tether.store import vocabulary as v

GUARDS = "tests.guards.agents_governed:GUARDS"


@pytest.fixture
async def waiting_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    db = str(tmp_path / "t.db")
    t = Tether(db, guards=GUARDS)
    record = await t.run(agents_governed.governed_refund, "refund order A-7")
    t.close()
    assert record.status == "waiting"
    return db, record.id


async def test_rows_carry_tokens_and_guard_decisions(waiting_run: tuple[str, str]) -> None:
    db, run_id = waiting_run
    t = Tether(db)
    events = t.events(run_id)
    t.close()
    rows = timeline_rows(events)
    assert [r.seq for r in rows] == [e.seq for e in events]
    models = [r for r in rows if r.kind == v.STEP_COMPLETED and (r.name or "").startswith("model:")]
    assert len(models) == 2 and all(r.tokens_in > 100 and r.tokens_out > 0 for r in models)
    assert "calls refund" in models[1].detail
    decisions = [r.decision for r in rows if r.decision]
    assert decisions == ["allow lookups", "approve big-refunds"]
    tool_done = next(r for r in rows if r.name == "tool:lookup_order" and r.took_ms is not None)
    assert tool_done.detail.startswith("ok: ") and '"amount": 500' in tool_done.detail
    totals = timeline_totals(events)
    assert totals.model_calls == 2 and totals.tool_calls == 1
    assert totals.tokens_in == sum(r.tokens_in for r in rows)
    assert totals.decisions == {"allow": 1, "approve": 1}
    json.dumps([r.to_json() for r in rows])  # JSON-ready


async def test_show_json_and_full(waiting_run: tuple[str, str]) -> None:
    db, run_id = waiting_run
    out = CliRunner().invoke(app, ["show", run_id, "--json", "--db", db])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["run"]["id"] == run_id and data["run"]["status"] == "waiting"
    assert {"seq", "kind", "name", "took_ms", "detail", "tokens_in", "decision"} <= set(
        data["timeline"][0])
    human = CliRunner().invoke(app, ["show", run_id, "--db", db], env={"COLUMNS": "200"})
    assert "approve big-refunds" in human.output and "guard decisions: 1 allow, 1 approve" in (
        " ".join(human.output.split()))


async def test_failed_run_shows_its_traceback_with_full(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    db = str(tmp_path / "f.db")
    t = Tether(db, guards=GUARDS)
    record = await t.run(agents_governed.direct_refund, "A-7")  # refused past the gateway
    t.close()
    assert record.status == "failed"
    short = CliRunner().invoke(app, ["show", record.id, "--db", db], env={"COLUMNS": "200"})
    assert "traceback stored" in short.output and "Traceback (most recent" not in short.output
    full = CliRunner().invoke(app, ["show", record.id, "--full", "--db", db],
                              env={"COLUMNS": "200"})
    assert "Traceback (most recent call last)" in full.output


def test_long_details_are_cut_visibly_and_full_keeps_them(tmp_path: Path) -> None:
    from tether.store import Event, RunRecord

    text = "x" * 500
    events = [Event(run_id="r1", seq=1, kind="log", key="1", name=None,
                    data={"message": text, "approver": "alice"}, ts=1.0)]
    record = RunRecord(id="r1", agent="a:b", status="succeeded", input=None)
    from rich.console import Console

    def render(full: bool) -> str:
        console = Console(width=2000, record=True)
        console.print(timeline_table(record, events, full=full))
        return console.export_text()

    assert "…" in render(False) and text not in render(False)
    assert text in render(True) and '"approver": "alice"' in render(True)


def test_a_full_detail_is_cut_past_its_limit_saying_where_the_rest_is() -> None:
    from tether.observe import clip_detail
    from tether.observe.timeline import FULL_DETAIL_MAX

    short = "x" * FULL_DETAIL_MAX
    assert clip_detail(short) == short
    cut = clip_detail("y" * (FULL_DETAIL_MAX + 500), "GET /v1/runs/R/events")
    assert cut == "y" * FULL_DETAIL_MAX + "… (500 more characters: GET /v1/runs/R/events)"


def test_a_step_run_again_after_a_crash_is_timed_from_its_own_start() -> None:
    """Before: a 2 s step whose first attempt's worker died 30 s earlier showed as 32,000 ms
    (timed from the dead attempt's start); a wait keeps its first start (it went on meanwhile)."""
    from tether.store import Event

    events = [Event("r1", 1, v.RUN_SUBMITTED, None, None, {}, 100.0),
              Event("r1", 2, v.STEP_STARTED, "1", "work", {"attempt": 1}, 100.0),
              Event("r1", 3, v.RUN_RESUMED, None, None, {}, 130.0),  # the worker died
              Event("r1", 4, v.STEP_STARTED, "1", "work", {"attempt": 1}, 130.0),
              Event("r1", 5, v.STEP_COMPLETED, "1", "work", 1, 132.0),
              Event("r1", 6, v.TIMER_STARTED, "2", "sleep", {"wake_at": 200.0}, 140.0),
              Event("r1", 7, v.RUN_RESUMED, None, None, {}, 170.0),
              Event("r1", 8, v.TIMER_STARTED, "2", "sleep", {"wake_at": 200.0}, 170.0),
              Event("r1", 9, v.TIMER_FIRED, "2", "sleep", None, 200.0)]
    took = {row.seq: row.took_ms for row in timeline_rows(events)}
    assert took[5] == pytest.approx(2000.0)
    assert took[9] == pytest.approx(60_000.0)
