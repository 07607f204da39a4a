"""Issue 14: a run's journal as OpenTelemetry GenAI spans, checked through the official SDK.

Real runs (real runtime, real SQLite, the guards) are exported with `export_run` into the SDK's
`InMemorySpanExporter`, and the finished spans are read back: names, `gen_ai.*` attributes,
parentage across child runs, guard decisions, waits, halts, rejected replies, and message content
only when opted in. The model is a ScriptedModel (a function of the conversation).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.cli import agents_progress
from tether import Tether
from tether.agents import react
from tether.models import ScriptedModel
from tether.models.messages import ModelResponse, ToolCall, Usage
from tether.models.scripted import ScriptedCall
from tether.observe import export_live, export_run, run_spans
from tether.observe.spans import CONTENT_ENV, trace_id_of

GUARDS = "tests.cli.agents_progress:GUARDS"
THOUGHT = "The refund depends on what A-7 paid, so I look that up first."


def _thinking(call: ScriptedCall) -> Any:
    """A thought with the first call (the mind-log), a call the policy denies, an answer."""
    seen = [m for m in call.messages if m.role == "tool"]
    if not seen:
        return ModelResponse(text=THOUGHT, finish_reason="tool_calls",
                             tool_calls=[ToolCall(id="c1", name="lookup",
                                                  arguments={"order": "A-7"})],
                             usage=Usage(input_tokens=120, output_tokens=17), cost_usd=0.0021)
    if len(seen) == 1:
        return ToolCall(id="c2", name="delete_all", arguments={})
    return "A-7 paid 42; refund 42."


async def thinking_react(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_thinking, name="acme:tiny-1"),
                       tools=agents_progress.TOOLS, max_steps=5)


def _typo_first(call: ScriptedCall) -> Any:
    if not any(m.role == "tool" for m in call.messages):
        return ToolCall(id="a", name="lookup_ordr", arguments={"order": "A-7"})
    if sum(m.role == "tool" for m in call.messages) == 1 and call.messages[-1].content and \
            "invalid" in call.messages[-1].content:
        return ToolCall(id="b", name="lookup", arguments={"order": "A-7"})
    return "A-7 paid 42"


async def typo_react(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_typo_first),
                       tools=agents_progress.TOOLS, max_steps=4)


async def waits(ctx: Any, _: Any) -> str:
    await ctx.sleep(0.05)
    got = await ctx.wait_for("go")
    return str(await ctx.step("finish", lambda: f"went {got}"))


@pytest.fixture(autouse=True)
def _no_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_TEST_GATE", raising=False)
    monkeypatch.delenv(CONTENT_ENV, raising=False)
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))


@pytest.fixture
def governed(db_path: str) -> Tether:
    return Tether(db_path, guards=GUARDS)


def exported(t: Tether, run_id: str, **kwargs: Any) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    sent = export_run(t, run_id, memory, **kwargs)
    spans = list(memory.get_finished_spans())
    assert sent == len(spans) > 0
    return spans


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(s: ReadableSpan) -> int | None:
    return s.parent.span_id if s.parent is not None else None


async def test_model_and_tool_calls_are_genai_spans_under_the_agent(governed: Tether) -> None:
    run = await governed.run(thinking_react, "refund A-7")
    assert run.status == "succeeded", run.error
    spans = exported(governed, run.id)
    [agent] = by_name(spans, "invoke_agent thinking_react")
    chats = by_name(spans, "chat tiny-1")
    [lookup] = by_name(spans, "execute_tool lookup")
    [delete] = by_name(spans, "execute_tool delete_all")
    assert len(chats) == 3 and len(spans) == 6
    # one trace, rooted at the agent, every call directly under it
    assert agent.parent is None
    assert {s.context.trace_id for s in spans} == {int(trace_id_of(run.id), 16)}
    assert all(parent_of(s) == agent.context.span_id for s in spans if s is not agent)
    a = agent.attributes or {}
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == \
        "thinking_react" and a["tether.run.id"] == run.id and a["tether.tenant"] == "default"
    assert a["gen_ai.usage.input_tokens"] == sum(
        (c.attributes or {})["gen_ai.usage.input_tokens"] for c in chats)  # type: ignore[misc]
    first = chats[0].attributes or {}
    assert chats[0].kind is SpanKind.CLIENT
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "acme"
    assert first["gen_ai.request.model"] == "tiny-1" and first["gen_ai.response.model"] == "tiny-1"
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (120, 17)
    assert tuple(first["gen_ai.response.finish_reasons"]) == ("tool_calls",)  # type: ignore[arg-type]
    assert first["tether.cost.usd"] == pytest.approx(0.0021)
    # tools: name, the model's call id, the policy's decision; the denied one is an error
    la, da = lookup.attributes or {}, delete.attributes or {}
    assert la["gen_ai.operation.name"] == "execute_tool" and la["gen_ai.tool.name"] == "lookup"
    assert la["gen_ai.tool.call.id"] == "c1" and da["gen_ai.tool.call.id"] == "c2"
    assert la["tether.guard.action"] == "allow" and la["tether.guard.rule"] == "lookups"
    assert lookup.status.status_code is StatusCode.OK
    assert da["tether.guard.action"] == "deny" and da["tether.guard.answered_by"] == "policy"
    assert delete.status.status_code is StatusCode.ERROR and da["error.type"] == "policy_denied"
    assert [e.name for e in delete.events] == ["tether.guard.decision"]
    # the journal's timestamps, not the export's
    events = governed.events(run.id)
    assert agent.start_time == round(events[0].ts * 1e9)
    assert agent.end_time == round(events[-1].ts * 1e9)
    assert all(s.start_time <= s.end_time for s in spans)  # type: ignore[operator]
    # content is opt-in: none of it by default
    for s in spans:
        keys = set(s.attributes or {})
        assert not keys & {"gen_ai.output.messages", "gen_ai.tool.call.arguments",
                           "gen_ai.tool.call.result", "tether.tool.rationale"}, s.name


async def test_content_and_the_mind_log_only_when_opted_in(
        governed: Tether, monkeypatch: pytest.MonkeyPatch) -> None:
    run = await governed.run(thinking_react, "refund A-7")
    monkeypatch.setenv(CONTENT_ENV, "True")  # the conventions' switch, any case
    spans = exported(governed, run.id)
    [lookup] = by_name(spans, "execute_tool lookup")
    la = lookup.attributes or {}
    assert la["tether.tool.rationale"] == THOUGHT  # the thought that preceded the call
    assert la["gen_ai.tool.call.arguments"] == '{"order": "A-7"}'
    assert '"amount": 42' in str(la["gen_ai.tool.call.result"])
    first = by_name(spans, "chat tiny-1")[0].attributes or {}
    assert THOUGHT in str(first["gen_ai.output.messages"])
    # the denied call had no thought: nothing attached, and the next model's text is not used
    assert "tether.tool.rationale" not in (by_name(spans, "execute_tool delete_all")[0]
                                           .attributes or {})
    # an explicit argument wins over the environment
    quiet = exported(governed, run.id, content=False)
    assert all("tether.tool.rationale" not in (s.attributes or {}) for s in quiet)
    monkeypatch.setenv(CONTENT_ENV, "false")
    assert all("gen_ai.tool.call.arguments" not in (s.attributes or {})
               for s in exported(governed, run.id))


async def test_child_runs_nest_under_their_parents_spawn(tether: Tether) -> None:
    run = await tether.run(agents_progress.fans_out, 2)
    assert run.status == "succeeded", run.error
    spans = exported(tether, run.id)
    [root] = by_name(spans, "invoke_agent fans_out")
    spawns = by_name(spans, "tether.spawn counted_child")
    children = by_name(spans, "invoke_agent counted_child")
    steps = by_name(spans, "tether.step count")
    assert len(spawns) == len(children) == len(steps) == 2
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert all(parent_of(s) == root.context.span_id for s in spawns)
    spawn_of = {(s.attributes or {})["tether.child.run_id"]: s.context.span_id for s in spawns}
    for child in children:
        assert parent_of(child) == spawn_of[(child.attributes or {})["tether.run.id"]]
    assert {parent_of(s) for s in steps} == {c.context.span_id for c in children}
    # deterministic: exported again (or from the child alone), the same ids
    again = exported(tether, run.id)
    assert sorted(s.context.span_id for s in again) == sorted(s.context.span_id for s in spans)
    child_id = str((children[0].attributes or {})["tether.run.id"])
    alone = exported(tether, child_id)
    assert {s.context.span_id for s in alone} <= {s.context.span_id for s in spans}
    assert {s.context.trace_id for s in alone} == {root.context.trace_id}


async def test_timers_and_signal_waits_are_spans(tether: Tether) -> None:
    run_id = tether.submit(waits, None)
    first = await tether.drive(run_id)
    assert first.status == "waiting"
    live = run_spans(tether, run_id)  # a live run: what is open is marked so
    assert [s.name for s in live if s.attributes.get("tether.open")] == [
        "tether.wait go", "invoke_agent waits"]
    tether.signal(run_id, "go", "now")
    assert (await tether.drive(run_id)).status == "succeeded"
    spans = exported(tether, run_id)
    [timer] = by_name(spans, "tether.timer")
    [wait] = by_name(spans, "tether.wait go")
    assert (timer.attributes or {})["tether.timer.seconds"] == 0.05
    assert timer.end_time - timer.start_time >= 0.05e9  # type: ignore[operator]
    assert wait.end_time > wait.start_time  # type: ignore[operator]
    assert not any((s.attributes or {}).get("tether.open") for s in spans)


async def test_budget_halts_are_guard_events_on_the_agent_span(governed: Tether) -> None:
    run_id = governed.submit(agents_progress.gated_steps, 3, options={"budget": {"steps": 2}})
    assert (await governed.drive(run_id)).status == "halted"
    [agent] = by_name(exported(governed, run_id), "invoke_agent gated_steps")
    assert agent.status.status_code is StatusCode.ERROR
    halts = [e for e in agent.events if e.name == "tether.guard.halt"]
    assert len(halts) == 1 and (halts[0].attributes or {})["tether.guard"] == "budget"
    assert (agent.attributes or {})["tether.run.status"] == "halted"
    assert (agent.attributes or {})["error.type"] == "tether.halted.budget"


async def test_a_rejected_reply_is_a_failed_chat_span_before_its_retry(tether: Tether) -> None:
    run = await tether.run(typo_react, "how much did A-7 pay?")
    assert run.status == "succeeded", run.error
    chats = sorted(by_name(exported(tether, run.id), "chat scripted"),
                   key=lambda s: s.start_time or 0)
    rejected = chats[0]
    assert rejected.status.status_code is StatusCode.ERROR
    reasons = (rejected.attributes or {})["tether.model.rejected"]
    assert "lookup_ordr" in str(reasons)
    assert [e.name for e in rejected.events] == ["tether.model.rejected"]
    assert all(c.status.status_code is StatusCode.OK for c in chats[1:])
    # the rejected proposal never ran: the lookup that did is the retry's call
    [tool] = by_name(exported(tether, run.id), "execute_tool lookup")
    assert (tool.attributes or {})["gen_ai.tool.call.id"] == "b"


async def test_a_retried_run_has_one_agent_span_per_attempt(governed: Tether) -> None:
    memory = InMemorySpanExporter()
    run_id = governed.submit(agents_progress.gated_steps, 3, options={"budget": {"steps": 2}})
    with export_live(governed, memory):
        assert (await governed.drive(run_id)).status == "halted"
        governed.retry(run_id, budget={"steps": 10})
        assert (await governed.drive(run_id)).status == "succeeded"
    live = memory.get_finished_spans()
    assert Counter(s.context.span_id for s in live).most_common(1)[0][1] == 1
    attempts = sorted(by_name(live, "invoke_agent gated_steps"), key=lambda s: s.start_time or 0)
    assert [(a.attributes or {})["tether.run.status"] for a in attempts] == ["halted",
                                                                            "succeeded"]
    assert all(a.parent is None for a in attempts)  # siblings: the first was sent already
    assert ["tether.run.retried" in [e.name for e in a.events] for a in attempts] == [False,
                                                                                      True]
    # each step hangs under the attempt that journaled it; the replayed ones are not repeated
    under = Counter(parent_of(s) for s in live if s.name.startswith("tether.step"))
    assert under[attempts[0].context.span_id] == 2  # first, gated (then the budget halted it)
    assert under[attempts[1].context.span_id] == 3  # after0..after2 ran in the second attempt
    assert ids_of(live) == ids_of(exported(governed, run_id))


def ids_of(spans: Any) -> list[tuple[int, str]]:
    return sorted((s.context.span_id, s.name) for s in spans)


def _fenced(call: ScriptedCall) -> Any:
    return '```json\n{"thought": "nothing to look up", "final_answer": "42"}\n```'


async def fenced_json(ctx: Any, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=ScriptedModel(fn=_fenced), tools=agents_progress.TOOLS,
                       mode="json", max_steps=2)


async def test_a_repaired_reply_is_marked_on_its_chat_span(tether: Tether) -> None:
    run = await tether.run(fenced_json, "what is the answer?")
    assert run.status == "succeeded", run.error
    [chat] = by_name(exported(tether, run.id), "chat scripted")
    assert (chat.attributes or {})["tether.model.repaired"] is True
    assert chat.status.status_code is StatusCode.OK


async def test_a_step_spans_id_is_its_runs_id_and_journal_position_hashed(
        tether: Tether) -> None:
    from tether.observe.spans import span_id_of

    run = await tether.run(typo_react, "A-7?")
    steps = [s for s in run_spans(tether, run.id) if not s.name.startswith("invoke_agent")]
    assert len(steps) >= 3
    assert all(s.span_id == span_id_of(run.id, f"seq{s.start_seq}") for s in steps)
