"""Issue 14: live export takes a run's events from its worker's committer as they commit
(`GroupCommitter.commit_listeners`) instead of reading back the journal every poll, and still
reads the journal for what it was not handed (events written by another writer)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tether import Tether
from tether.observe import LiveExport, run_spans
from tether.observe._wire_spans import journal_event
from tether.observe.otel import _RecordSpans, _RunTail
from tether.store import Event, NewEvent, dumps

from .test_spans import _no_gate, waits  # noqa: F401 - fixture

FOLLOWED: dict[str, Any] = {}  # the test's live export and read counter, for the agent


def test_the_handed_over_events_are_the_journals_own_records() -> None:
    # live export builds them without the frozen __init__: still equal, hashable and frozen
    fields = ("r1", 7, "step_completed", "k7", "tool:lookup", {"ok": True}, 1.25)
    fast, made = journal_event(*fields), Event(*fields)
    assert type(fast) is Event and fast == made and repr(fast) == repr(made)
    assert hash(journal_event("r1", 7, "log", None, None, "x", 1.0)) == hash(
        Event("r1", 7, "log", None, None, "x", 1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = 8  # type: ignore[misc]


async def many_steps(ctx: Any, n: int) -> int:
    """`n` steps, then wait until the live export has followed all of them (while the run is
    still executing) and note how often the journal was read by then."""
    for i in range(n):
        await ctx.step(f"s{i}", lambda i=i: i)
    live, reads = FOLLOWED["live"], FOLLOWED["reads"]
    deadline = time.monotonic() + 60
    while live._tails[ctx.run_id].seq < 2 * n + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    FOLLOWED["seq"], FOLLOWED["reads_then"] = live._tails[ctx.run_id].seq, reads[ctx.run_id]
    return n


async def test_a_followed_run_is_read_from_the_journal_once_not_per_poll(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Tether(db_path)
    reads: Counter[str] = Counter()
    load_events = t.store.load_events

    def counted(run_id: str, after_seq: int = 0) -> Any:
        reads[run_id] += 1
        return load_events(run_id, after_seq)

    monkeypatch.setattr(t.store, "load_events", counted)
    memory = InMemorySpanExporter()
    with LiveExport(t, memory, poll=0.001) as live:  # a poll between almost every two steps
        FOLLOWED.update(live=live, reads=reads)
        run = await t.run(many_steps, 60)
    assert run.status == "succeeded"
    # followed up to the last step while executing (run_submitted, run_started, 60 steps
    # started and completed) with two reads: the worker's own when it claimed the run, the
    # export's when it took it up; the 120 step events came from the committer
    assert (FOLLOWED["seq"], FOLLOWED["reads_then"]) == (122, 2)
    sent = memory.get_finished_spans()
    assert sorted(s.context.span_id for s in sent) == sorted(
        int(s.span_id, 16) for s in run_spans(t, run.id))
    assert len(sent) == 61


def _new(tx: Any, run_id: str, kind: str, key: str, name: str, data: Any) -> NewEvent:
    return NewEvent(tx.next_seq(run_id), kind, key, name, dumps(data), time.time())


async def test_events_not_handed_over_are_read_from_the_journal(db_path: str) -> None:
    t = Tether(db_path)
    run_id = t.submit(waits, None)
    assert (await t.drive(run_id)).status == "waiting"
    tail = _RunTail(t.store, _RecordSpans(t.get(run_id)), 0)
    before = tail.seq

    def step(kind: str) -> Any:
        def op(tx: Any) -> NewEvent:
            event = _new(tx, run_id, kind, "k9", "elsewhere", {"value": 1} if
                         kind == "step_completed" else {"attempt": 1})
            tx.append_events(run_id, [event])
            return event
        return op

    t.store.write(step("step_started"))  # written by another writer: never handed over
    completed = t.store.write(step("step_completed"))
    tail.handed.append([completed])
    [span] = [s for _, _, s in tail.poll() if s.name == "tether.step elsewhere"]
    assert (span.start_seq, span.end_seq) == (before + 1, before + 2)  # opened by the unseen one
    assert tail.seq == before + 2
    tail.handed.append([completed])  # handed twice (already read from the journal): once only
    assert tail.poll() == []


async def test_a_worker_that_serves_again_still_hands_its_events_over(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Tether(db_path)
    reads: Counter[str] = Counter()
    load_events = t.store.load_events

    def counted(run_id: str, after_seq: int = 0) -> Any:
        reads[run_id] += 1
        return load_events(run_id, after_seq)

    monkeypatch.setattr(t.store, "load_events", counted)
    worker = t.worker()
    with LiveExport(t, InMemorySpanExporter(), poll=0.001) as live:
        FOLLOWED.update(live=live, reads=reads)
        for _ in range(2):  # each serve() writes with a committer of its own
            run_id = t.submit(many_steps, 10)

            def finished(run_id: str = run_id) -> bool:
                return t.get(run_id).finished

            await worker.serve(until=finished)
            assert t.get(run_id).status == "succeeded"
            assert (FOLLOWED["seq"], FOLLOWED["reads_then"]) == (22, 2)
