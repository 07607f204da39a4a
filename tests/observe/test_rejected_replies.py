"""Issue 17 §10: a model reply that validation refused (and asked again) is visible.

The issue's example: ReAct's result said `"steps": 3` while the journal held 4 model calls, and
nothing said why. Now each refused reply is journaled with the errors the model was told, shown
by the timeline ("rejected: ..."), listed in the trajectory step it belongs to, and counted in
`model_calls`. Real runtime, real SQLite; the model is a ScriptedModel function of the
conversation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cli import agents_progress
from tether import Tether
from tether.agents import react
from tether.cli import app
from tether.models import ScriptedModel
from tether.models.messages import ToolCall
from tether.models.scripted import ScriptedCall
from tether.observe import timeline_rows
from tether.store import vocabulary as v

FEEDBACK = "Not executed. Your previous reply was invalid"


def _fed_back(call: ScriptedCall) -> bool:
    last = call.messages[-1]
    return last.role == "tool" and (last.content or "").startswith(FEEDBACK)


def _observed(call: ScriptedCall) -> int:
    return sum(1 for m in call.messages if m.role == "tool")


def _typo_first(call: ScriptedCall) -> Any:
    """Step 1: a misspelled tool (refused), then the right call; step 2 a call; step 3 answers."""
    if _observed(call) == 0:
        return ToolCall(id="a", name="lookup_ordr", arguments={"order": "A-7"})
    if _fed_back(call) and _observed(call) == 1:
        return ToolCall(id="b", name="lookup", arguments={"order": "A-7"})
    if _observed(call) == 1:
        return ToolCall(id="c", name="lookup", arguments={"order": "B-2"})
    return "A-7 and B-2 paid 42 each"


def _bad_arguments_first(call: ScriptedCall) -> Any:
    if not _fed_back(call) and _observed(call) == 0:
        return ToolCall(id="a", name="lookup", arguments={"ordr": "A-7"})
    if _observed(call) <= 1 and not any(m.role == "assistant" and m.tool_calls and
                                        m.tool_calls[0].id == "b" for m in call.messages):
        return ToolCall(id="b", name="lookup", arguments={"order": "A-7"})
    return "A-7 paid 42"


def _always_typo(call: ScriptedCall) -> Any:
    if os.environ.get("TETHER_TEST_LEDGER") and agents_progress.done("model fixed"):
        return _typo_first(call) if _observed(call) else ToolCall(
            id="b", name="lookup", arguments={"order": "A-7"})
    return ToolCall(id="x", name="lookup_ordr", arguments={"order": "A-7"})


async def typo_agent(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_typo_first),
                       tools=agents_progress.TOOLS, max_steps=5)


async def bad_arguments_agent(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_bad_arguments_first),
                       tools=agents_progress.TOOLS, max_steps=5)


async def never_valid_agent(ctx: Any, goal: str) -> dict[str, Any]:
    await ctx.step("prepare", lambda: agents_progress.did("prepare") or 1)
    return await react(ctx, goal, model=ScriptedModel(fn=_always_typo),
                       tools=agents_progress.TOOLS, max_steps=5)


def _fenced(call: ScriptedCall) -> Any:
    return '```json\n{"thought": "nothing to look up", "final_answer": "42"}\n```'


async def fenced_json_agent(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_fenced),
                       tools=agents_progress.TOOLS, mode="json", max_steps=2)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(path))
    monkeypatch.delenv("TETHER_TEST_GATE", raising=False)
    return path


def model_calls(t: Tether, run_id: str) -> list[v.ModelCallRecord]:
    return [c for e in t.events(run_id) if (c := v.model_call(e)) is not None]


async def test_steps_three_model_calls_four_and_the_trajectory_says_why(
        tether: Tether, ledger: Path) -> None:
    run = await tether.run(typo_agent, "how much did A-7 and B-2 pay?")
    assert run.status == "succeeded", run.error
    result = run.result
    calls = model_calls(tether, run.id)
    assert result["steps"] == 3 and len(calls) == 4  # the numbers
    assert result["model_calls"] == len(calls)
    refused = result["trajectory"][0]["rejected"]
    assert len(refused) == 1 and "lookup_ordr" in refused[0]["reply"]
    assert "unknown tool 'lookup_ordr'" in refused[0]["errors"][0]
    assert all("rejected" not in s for s in result["trajectory"][1:])
    # the journal: the refused call says why, the accepted ones say nothing of the kind
    assert [bool(c.rejected) for c in calls] == [True, False, False, False]
    rows = [r for r in timeline_rows(tether.events(run.id)) if r.kind == v.STEP_COMPLETED
            and (r.name or "").startswith("model:")]
    assert rows[0].detail.startswith("rejected: tool call a: unknown tool 'lookup_ordr'")
    assert "reply was: calls lookup_ordr" in rows[0].detail
    assert not any(r.detail.startswith("rejected") for r in rows[1:])
    # a replay from the journal gives the same trajectory, refused reply included
    assert await tether.replay(run.id) == result


async def test_arguments_not_matching_the_schema_are_shown(tether: Tether, ledger: Path) -> None:
    run = await tether.run(bad_arguments_agent, "how much did A-7 pay?")
    assert run.status == "succeeded", run.error
    refused = run.result["trajectory"][0]["rejected"][0]
    errors = " ".join(refused["errors"])
    assert "'order' is a required property" in errors and "'ordr' was unexpected" in errors
    assert '"ordr"' in refused["reply"]
    assert run.result["model_calls"] == run.result["steps"] + 1


async def test_a_repaired_reply_is_marked(tether: Tether, ledger: Path) -> None:
    run = await tether.run(fenced_json_agent, "what is six times seven?")
    assert run.status == "succeeded" and run.result["answer"] == "42"
    calls = model_calls(tether, run.id)
    assert len(calls) == 1 and calls[0].repaired and not calls[0].rejected
    row = next(r for r in timeline_rows(tether.events(run.id)) if r.tokens_out)
    assert row.detail.startswith("repaired · ```json")
    assert "rejected" not in run.result["trajectory"][0]


async def test_every_round_refused_fails_the_run_and_each_round_is_shown(
        tether: Tether, ledger: Path, db_path: str) -> None:
    run = await tether.run(never_valid_agent, "how much did A-7 pay?")
    assert run.status == "failed" and "ModelOutputError" in (run.error or "")
    calls = model_calls(tether, run.id)
    assert len(calls) == 3 and all(c.rejected for c in calls)  # the call and 2 feedback rounds
    shown = CliRunner().invoke(app, ["show", run.id, "--db", db_path, "--full"],
                               env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("rejected: tool call x: unknown tool 'lookup_ordr'") == 3
    # refused replies at the end of a failed run are what a retry asks again
    plan = tether.retry(run.id)
    assert [s.name for s in plan.rerun] == ["model:scripted"] * 3
    assert all(s.idempotent for s in plan.rerun)  # asking a model again takes no effect
    assert not any("warning" in line for line in plan.explain())
    assert [n for _, n in plan.replayed] == ["prepare"]
    agents_progress.did("model fixed")
    again = await tether.drive(run.id)
    assert again.status == "succeeded", again.error
    assert agents_progress.done("prepare") == 1  # replayed, not executed again
    assert len(model_calls(tether, run.id)) == 3 + again.result["model_calls"]
