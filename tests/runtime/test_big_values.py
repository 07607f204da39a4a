"""Values too big for the journal and error texts of megabytes: refused or cut with a note,
never a write that fails after the step ran (which sent the run round again at every lease
expiry) and never megabytes in every `tether runs`."""

from __future__ import annotations

from typing import Any

import pytest

from tether import Context, Tether
from tether.runtime.errors import ERROR_TEXT_MAX
from tether.store import _codec

RAN: list[str] = []


def _report() -> str:
    RAN.append("report")
    return "x" * 5000


async def makes_a_big_report(ctx: Context, inp: Any) -> str:
    return str(await ctx.step("report", _report))


async def fails_loudly(ctx: Context, inp: Any) -> None:
    raise RuntimeError("the service answered: " + "<html>" * 200_000)


async def test_a_result_over_the_journal_limit_fails_its_step_once(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codec, "MAX_VALUE_BYTES", 4096)
    RAN.clear()
    t = Tether(db_path, lease_ttl=1.0)
    try:
        rec = await t.run(makes_a_big_report, None)
        assert rec.status == "failed", rec
        assert "over the journal's 4,096 bytes per value" in (rec.error or "")
        assert RAN == ["report"]
        kinds = [e.kind for e in t.events(rec.id)]
        assert kinds[-2:] == ["step_failed", "run_failed"]
    finally:
        t.close()


async def test_an_error_of_megabytes_is_kept_cut(db_path: str) -> None:
    t = Tether(db_path)
    try:
        rec = await t.run(fails_loudly, None)
        assert rec.status == "failed"
        error = rec.error or ""
        assert error.startswith("RuntimeError: the service answered: <html>")
        assert len(error) < ERROR_TEXT_MAX + 200 and "[... cut: " in error
        assert error.endswith("<html>")
        event = t.events(rec.id)[-1]
        assert event.kind == "run_failed"
        assert len(event.data["message"]) < ERROR_TEXT_MAX + 200
        assert len(event.data["traceback"]) < 2 * ERROR_TEXT_MAX + 200
    finally:
        t.close()


def _pay_and_answer_too_much() -> dict[str, Any]:
    RAN.append("pay")
    return {"receipt": 2**70}  # the payment went through; its receipt cannot be journaled


async def pays(ctx: Context, inp: Any) -> Any:
    return await ctx.step("pay", _pay_and_answer_too_much)


async def test_a_retry_says_a_step_whose_result_was_lost_took_effect(db_path: str) -> None:
    RAN.clear()
    t = Tether(db_path)
    try:
        rec = await t.run(pays, None)
        assert rec.status == "failed" and RAN == ["pay"]
        plan = t.retry(rec.id)
        assert [s.name for s in plan.rerun] == ["pay"] and plan.rerun[0].ran
        assert "  warning: pay ran and its effect took place; only its result could not be " \
            "recorded: it takes place again" in plan.explain()
    finally:
        t.close()
