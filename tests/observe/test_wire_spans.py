"""Issue 14: the common steps' spans (policy decisions included) encoded straight from their
two journal events (`_wire_spans.WireSpans`, what the OTLP exporters are sent, live and after
the fact) are the very bytes `SpanBuilder`'s spans encode to, on real runs of every shape
(guards, rejected and repaired replies, children, halts and retries, waits, a resumed run),
whether fed the journal's events or the committer's (JSON not decoded yet), with content or
without; and the common steps do take the short way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cli import agents_progress
from tether import Tether
from tether.models import ScriptedModel
from tether.models.messages import Message, ModelResponse, ToolCall, Usage
from tether.observe import run_spans
from tether.observe._otlp_wire import SpanEncoder
from tether.observe._wire_spans import WireSpans, run_wire_spans
from tether.observe.spans import SpanBuilder
from tether.store import NewEvent, dumps
from tether.tools import ToolRegistry, tool

from .test_spans import GUARDS, _no_gate, fenced_json, thinking_react, typo_react, waits  # noqa: F401
from .test_spans_guards import computes


@tool(side_effect="read")
def lookup(order: str) -> dict[str, Any]:
    """An order's status."""
    return {"order": order, "status": "shipped"}


@tool(side_effect="write")
def note(text: str) -> str:
    """Writes a note."""
    return text


def _calls(call: Any) -> Any:
    turn = len(call.messages)
    if turn > 7:
        return "done"
    # call ids: ASCII, then not; token counts of one, two and three varint bytes
    calls = [ToolCall(id=f"c{turn}" if turn < 4 else f"appel-{turn}-é", name="lookup",
                      arguments={"order": "A-7"})]
    if turn % 3 == 1:  # two at once, answered in parallel
        calls.append(ToolCall(id=f"n{turn}", name="note", arguments={"text": "x"}))
    return ModelResponse(text="", finish_reason="tool_calls", tool_calls=calls,
                         usage=Usage(input_tokens=turn * 4000, output_tokens=100 + turn),
                         cost_usd=0.001 * turn if turn % 2 else None)


async def tool_loop(ctx: Any, _: Any) -> int:
    """The benchmark's shape (a model proposing tool calls, the calls), ungoverned, with
    parallel calls, costs, token counts past one and two varint bytes, and a plain step."""
    registry = ToolRegistry([lookup, note])
    model = ScriptedModel(fn=_calls, name="acme:tiny-1")
    messages = [Message.user("Where is A-7?")]
    while True:
        reply = await ctx.model(model, messages, tools=registry.definitions())
        if not reply.tool_calls:
            break
        results = await asyncio.gather(*(ctx.tool(registry, c.name, c.arguments)
                                         for c in reply.tool_calls))
        messages += [reply.to_message(), *(Message.tool(c.id, r.observation())
                                           for c, r in zip(reply.tool_calls, results,
                                                           strict=True))]
    return int(await ctx.step("count", lambda: len(messages)))


def by_builder(t: Tether, run_id: str, content: bool) -> list[tuple[str, int, bytes]]:
    encoder = SpanEncoder()
    return [(s.run_id, s.end_seq, encoder.span_field(s))
            for s in run_spans(t, run_id, content=content)]


def by_committed_events(t: Tether, run_id: str, content: bool) -> list[tuple[str, int, bytes]]:
    """The run's own journal fed as the committer hands events over (data as JSON)."""
    spans = WireSpans(t.get(run_id), SpanEncoder(), content=content)
    out = []
    for e in t.store.load_events(run_id):
        out += spans.feed_new(NewEvent(e.seq, e.kind, e.key, e.name,
                                       None if e.data is None else dumps(e.data), e.ts))
    return out + spans.close_open_encoded()


async def real_runs(t: Tether, ungoverned: Tether) -> list[str]:
    runs = [await t.run(thinking_react, "refund A-7"),  # policy decisions, the mind-log, costs
            await t.run(typo_react, "how much did A-7 pay?"),  # a rejected reply
            await t.run(fenced_json, "what is the answer?"),  # a repaired reply
            await t.run(agents_progress.fans_out, 2),  # children
            await ungoverned.run(tool_loop, None)]
    halted = t.submit(agents_progress.gated_steps, 3, options={"budget": {"steps": 2}})
    assert (await t.drive(halted)).status == "halted"
    t.retry(halted, budget={"steps": 10})
    assert (await t.drive(halted)).status == "succeeded"  # a second attempt
    resumed = t.submit(waits, None)
    assert (await t.drive(resumed)).status == "waiting"
    t.signal(resumed, "go", 1)
    assert (await t.drive(resumed)).status == "succeeded"  # claimed again: run_resumed
    waiting = t.submit(waits, None)
    assert (await t.drive(waiting)).status == "waiting"  # spans still open
    assert all(r.status == "succeeded" for r in runs), [r.error for r in runs]
    return [*(r.id for r in runs), halted, resumed, waiting]


async def test_the_wire_spans_are_the_builders_spans_encoded(db_path: str) -> None:
    t = Tether(db_path, guards=GUARDS)
    compared = 0
    for run_id in await real_runs(t, Tether(db_path)):
        for content in (False, True):
            expected = by_builder(t, run_id, content)
            assert run_wire_spans(t, run_id, SpanEncoder(), content=content) == expected
            for run in [t.get(run_id), *t.store.descendants(run_id)]:
                assert by_committed_events(t, run.id, content) == [
                    s for s in expected if s[0] == run.id]
            compared += len(expected)
    assert compared > 80


@pytest.mark.sandbox  # executes code in bubblewrap
async def test_a_sandbox_execs_wire_span_is_the_builders(tether: Tether) -> None:
    run = await tether.run(computes, None)
    assert run_wire_spans(tether, run.id, SpanEncoder()) == by_builder(tether, run.id, False)


async def test_the_common_steps_are_encoded_without_building_a_span(
        tether: Tether, db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = await tether.run(tool_loop, None)
    governed = Tether(db_path, guards=GUARDS)
    guarded = await governed.run(thinking_react, "refund A-7")
    built: list[str | None] = []
    open_span = SpanBuilder._open_span

    def counted(self: SpanBuilder, key: str, step: Any) -> Any:
        built.append(step[2])
        return open_span(self, key, step)

    monkeypatch.setattr(SpanBuilder, "_open_span", counted)
    spans = run_wire_spans(tether, run.id, SpanEncoder())
    assert len(spans) > 10 and built == []  # every step here is a common one
    run_wire_spans(tether, run.id, SpanEncoder(), content=True)
    assert len(built) == len(spans) - 1  # content: each step built as a SpanRecord
    built.clear()
    # governed: a step the policy allowed too; the one it refused (answered) is built
    assert len(run_wire_spans(governed, guarded.id, SpanEncoder())) == 6
    assert built == ["tool:delete_all"]


async def test_a_polls_handed_over_events_give_the_spans_fed_one_by_one(
        tether: Tether, db_path: str) -> None:
    """`feed_handed` (one loop for a poll's events, what live export calls) makes the spans
    `feed_new` makes event by event, skips what was fed already (a batch handed over again
    overlaps the last) and says how far it fed; so does the records' builder."""
    from tether.observe.otel import _RecordSpans

    governed = Tether(db_path, guards=GUARDS)
    runs = [await tether.run(tool_loop, None), await governed.run(thinking_react, "refund A-7")]
    for run in runs:
        expected = by_committed_events(governed, run.id, False)
        new = [NewEvent(e.seq, e.kind, e.key, e.name,
                        None if e.data is None else dumps(e.data), e.ts)
               for e in governed.store.load_events(run.id)]
        batches = [new[max(0, i - 1):i + 3] for i in range(0, len(new), 3)]  # overlapping
        spans, records = WireSpans(run, SpanEncoder()), _RecordSpans(run)
        out: list[tuple[str, int, bytes]] = []
        built: list[Any] = []
        fed = recorded = 0
        for batch in batches:
            closed, fed = spans.feed_handed(batch, fed)
            out += closed
            records_closed, recorded = records.feed_handed(batch, recorded)
            built += [s for _, _, s in records_closed]
            assert fed == recorded == batch[-1].seq
        assert out + spans.close_open_encoded() == expected and len(expected) > 5
        encoder = SpanEncoder()
        assert [(run.id, s.end_seq, encoder.span_field(s))
                for s in built + records.close_open()] == expected


async def test_a_poll_is_drained_up_to_a_gap_and_no_further(tether: Tether) -> None:
    """`drain` (what a poll feeds) takes the batches handed over while each follows on from
    the last, stops before one that does not (its events are the journal's to read first), and
    says how far it fed and the last event's kind: the same spans as batch by batch."""
    from collections import deque

    run = await tether.run(tool_loop, None)
    new = [NewEvent(e.seq, e.kind, e.key, e.name, None if e.data is None else dumps(e.data),
                    e.ts) for e in tether.store.load_events(run.id)]
    expected = by_committed_events(tether, run.id, False)
    batches = [new[i:i + 2] for i in range(0, len(new), 2)]
    handed = deque(batches[:3] + batches[4:])  # the fourth batch never handed over: a gap
    spans = WireSpans(run, SpanEncoder())
    out, fed, kind = spans.drain(handed, 0)
    assert (fed, kind) == (batches[2][-1].seq, batches[2][-1].kind) and len(handed) == len(
        batches) - 4  # stopped before the batch after the gap
    out += spans.drain(deque([batches[3]]), fed)[0]  # as if read from the journal
    rest, fed, kind = spans.drain(handed, batches[3][-1].seq)
    assert not handed and (fed, kind) == (new[-1].seq, new[-1].kind)
    assert out + rest + spans.close_open_encoded() == expected


def test_a_models_started_data_is_decoded_once_whatever_its_request_hash() -> None:
    """A model's `step_started` JSON differs from call to call by its request hash alone, which
    no span carries: its data is remembered without it (decoded once); anything that is not a
    64-digit hash there is decoded as it is."""
    spans = WireSpans(_a_run(), SpanEncoder())

    def started(digest: str) -> bytes:
        return dumps({"attempt": 1, "meta": {"kind": "model", "model": "scripted",
                                             "request_hash": digest}})

    first = spans._started_json(started("a" * 64))
    assert first == {"attempt": 1, "meta": {"kind": "model", "model": "scripted"}}
    assert spans._started_json(started("b" * 64)) is first
    for odd in ("short", "x" * 63 + '"', "é" * 64):  # not cut: the whole JSON, decoded
        assert spans._started_json(started(odd))["meta"]["request_hash"] == odd


def test_journal_seq_attributes_made_once_are_the_ones_made_each_time() -> None:
    """Every span's `tether.journal.seq`, kept per seq by the encoder: the same bytes."""
    encoder, fresh = SpanEncoder(), SpanEncoder()
    for seq in (0, 1, 127, 128, 4095, 4096, 16383, 16384, 2**40):
        made = encoder.seq_attribute(seq)
        assert encoder.seq_attribute(seq) == made == fresh.attribute("tether.journal.seq", seq)


def _a_run() -> Any:
    from tether.store import RunRecord

    return RunRecord(id="r1", agent="a:b", status="running", input=None, tenant="default",
                     parent_id=None, root_id="r1", depth=0, spec_version=None, result=None,
                     error=None, reason=None, wake_at=None, cancel_requested=False,
                     created_at=1.0, updated_at=1.0, attempts=1, options={}, flags=[],
                     omitted=())
