"""Sandbox execs in the KPIs: a real bubblewrap sandbox, one exec that succeeds, one that exits
non-zero (an action that failed, counted in `sandbox.exec`'s P(success))."""

from __future__ import annotations

import pytest

from tether import Context, Tether
from tether.observe import collect_kpis

pytestmark = [pytest.mark.sandbox]


async def two_execs(ctx: Context, _: None) -> list[int]:
    ok = await ctx.exec("print(6 * 7)", language="python", backend="bwrap")
    bad = await ctx.exec("import sys; sys.exit(3)", language="python", backend="bwrap")
    return [ok["exit_code"], bad["exit_code"]]


async def test_sandbox_execs_are_actions_with_an_outcome(db_path: str) -> None:
    t = Tether(db_path)
    try:
        run = await t.run(two_execs, None)
        report = collect_kpis(t.store)
    finally:
        t.close()
    assert run.status == "succeeded" and run.result == [0, 3]
    (execs,) = report.tools
    assert (execs.tool, execs.calls, execs.ok, execs.errors) == ("sandbox.exec", 2, 1, 1)
    assert execs.p_success == 0.5 and execs.error_types == {"exit 3": 1}
    assert execs.mean_s is not None and execs.mean_s > 0
    (agent,) = report.agents
    assert agent.tool_calls == 2 and agent.model_calls == 0 and agent.tool_s > 0
