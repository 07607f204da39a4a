"""Every ctx operation, live and on replay: replay must return the journaled outcomes and never
execute an activity again."""

from __future__ import annotations

from typing import Any

import pytest

from tether import Tether
from tether.runtime import Context, GroupCommitter
from tether.store import dumps

from . import agents_core as A


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


async def replay_only(tether: Tether, run_id: str, agent: Any) -> Any:
    """Re-execute purely from the journal: anything live would raise (see Tether.replay)."""
    return await tether.replay(run_id, agent)


async def test_every_operation_live_then_replayed(tether: Tether) -> None:
    first = await tether.run(A.every_op, {"x": 5})
    assert first.status == "waiting" and "signal 'go'" in (first.reason or "")
    live_calls = dict(A.CALLS)
    assert live_calls == {"async-step": 1, "sync-step": 1, "left": 1, "right": 1, "double": 1,
                          "boom": 1}
    tether.signal(first.id, "go", {"approved": True})
    done = await tether.drive(first.id)
    assert done.status == "succeeded", done.error
    assert dict(A.CALLS) == live_calls, "resuming re-executed a completed activity"
    result = done.result
    assert result["a"] == 5 and result["b"] == 10 and (result["p"], result["q"]) == (1, 2)
    assert result["c"] == 10
    assert result["failed"].startswith("step 'failing' failed: ValueError: nope")
    assert result["signal"] == {"approved": True}

    n_events = tether.store.count_events(first.id)
    again = await replay_only(tether, first.id, A.every_op)
    assert again == result, "replay returned different values than the live run"
    assert dict(A.CALLS) == live_calls
    assert tether.store.count_events(first.id) == n_events


async def test_journal_holds_deltas_and_keys(tether: Tether) -> None:
    rec = await tether.run(A.sequential, 4)
    assert rec.status == "succeeded" and rec.result == 0 + 1 + 2 + 3
    events = tether.events(rec.id)
    steps = [(e.kind, e.key) for e in events if e.kind.startswith("step_")]
    assert steps == [("step_started", "1"), ("step_completed", "1"), ("step_started", "2"),
                     ("step_completed", "2"), ("step_started", "3"), ("step_completed", "3"),
                     ("step_started", "4"), ("step_completed", "4")]
    completed = [e.data for e in events if e.kind == "step_completed"]
    assert completed == [0, 1, 2, 3]  # each event holds only its own result, never the state
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_idempotency_key_is_run_and_seq(tether: Tether) -> None:
    rec = await tether.run(A.uses_idempotent_charge, None)
    assert rec.status == "succeeded"
    started = next(e for e in tether.events(rec.id) if e.kind == "step_started")
    assert rec.result["key"] == f"{rec.id}:{started.seq}"


async def test_gather_replays_by_branch_not_by_timing(tether: Tether) -> None:
    rec = await tether.run(A.every_op, {"x": 1})
    keys = {e.key for e in tether.events(rec.id) if e.name in ("left", "right")}
    assert keys == {"7:0.1", "7:1.1"}


async def test_gather_failure_cancels_siblings_and_propagates(tether: Tether) -> None:
    rec = await tether.run(A.gather_with_failure, None)
    assert rec.status == "failed"
    assert "branch failed" in (rec.error or "")
    # the slow sibling was started, then cancelled by structured concurrency: journaled as
    # cancelled (the runtime stopped it), not left in doubt
    assert A.CALLS["slow"] == 1
    failed = {e.name: e.data["type"] for e in tether.events(rec.id) if e.kind == "step_failed"}
    assert failed == {"boom": "ValueError", "slow": "Cancelled"}


async def test_step_timeout_is_a_journaled_failure(tether: Tether) -> None:
    rec = await tether.run(A.timeout_step, None)
    assert rec.status == "succeeded"
    assert "Timeout" in rec.result and "0.05" in rec.result
    failed = [e for e in tether.events(rec.id) if e.kind == "step_failed"]
    assert failed and failed[0].data["type"] == "Timeout"


async def test_long_timer_releases_the_worker_and_fires(tether: Tether) -> None:
    run_id = tether.submit(A.long_timer, 1.5)
    worker = tether.worker(poll_interval=0.05)
    await worker.serve(until=lambda: tether.get(run_id).status != "running"
                       and tether.get(run_id).status != "queued")
    waiting = tether.get(run_id)
    assert waiting.status == "waiting" and waiting.wake_at is not None
    assert "timer" in (waiting.reason or "")
    assert tether.store.write(lambda tx: tx.lease_holder(run_id)) is None  # no worker holds it
    done = await tether.drive(run_id)
    assert done.status == "succeeded" and done.result == "woke"
    kinds = [e.kind for e in tether.events(run_id)]
    assert kinds.count("timer_started") == 1 and kinds.count("timer_fired") == 1


async def test_signal_timeout_raises_in_agent(tether: Tether) -> None:
    rec = await tether.run(A.waits_then_steps, {"timeout": 0.2})
    assert rec.status in ("waiting", "failed")
    if rec.status == "waiting":  # deadline under the inline threshold is handled by wake_at
        rec = await tether.drive(rec.id)
    assert rec.status == "failed" and "no signal 'go' arrived within" in (rec.error or "")


async def test_signal_before_wait_is_not_lost(tether: Tether) -> None:
    run_id = tether.submit(A.waits_then_steps, None)
    tether.signal(run_id, "go", 42)
    rec = await tether.drive(run_id)
    assert rec.status == "succeeded" and rec.result == 42


async def test_children_carry_depth_and_root(tether: Tether) -> None:
    rec = await tether.run(A.every_op, {"x": 2})
    children = tether.store.list_runs(parent_id=rec.id)
    assert len(children) == 1
    child = children[0]
    assert child.depth == 1 and child.root_id == rec.id and child.status == "succeeded"
    assert child.result == 4


async def test_agent_exception_fails_run_with_traceback(tether: Tether) -> None:
    rec = await tether.run(A.raises, None)
    assert rec.status == "failed" and rec.error == "RuntimeError: the agent broke"
    last = tether.events(rec.id)[-1]
    assert last.kind == "run_failed" and "Traceback" in last.data["traceback"]


async def test_unserializable_result_is_a_clear_failure(tether: Tether) -> None:
    rec = await tether.run(A.returns_unserializable, None)
    assert rec.status == "failed"
    assert "not JSON-serializable" in (rec.error or "")


def test_unserializable_input_is_rejected_before_anything_is_written(tether: Tether) -> None:
    from tether import InvalidInput

    with pytest.raises(InvalidInput, match="not JSON-serializable"):
        tether.submit(A.sequential, {"bad": object()})
    assert tether.runs() == []


async def test_step_results_are_json_round_tripped_live(tether: Tether) -> None:
    rec = await tether.run(A.every_op, {"x": 3})
    assert dumps(rec.result)  # whatever the agent saw live is plain JSON


async def test_submit_many_is_one_transaction_and_all_or_nothing(tether: Tether) -> None:
    from tether import InvalidInput

    ids = tether.submit_many(A.sequential, [1, 2, 3])
    assert len(set(ids)) == 3
    with pytest.raises(InvalidInput):
        tether.submit_many(A.sequential, [4, object()])
    assert len(tether.runs()) == 3  # the invalid batch created nothing
    worker = tether.worker()
    await worker.serve(until=lambda: all(tether.get(i).finished for i in ids))
    assert [tether.get(i).result for i in ids] == [0, 1, 3]


async def test_pure_steps_journal_only_their_result_and_replay(tether: Tether) -> None:
    first = await tether.run(A.pure_steps, 3)
    assert first.status == "waiting" and A.CALLS["node"] == 3
    steps = [(e.kind, e.key) for e in tether.events(first.id) if e.kind.startswith("step_")]
    assert steps == [("step_completed", "1"), ("step_completed", "2"), ("step_completed", "3")]
    tether.signal(first.id, "go", 1)
    done = await tether.drive(first.id)
    assert done.result == {"messages": ["m0", "m1", "m2"], "got": 1}
    assert A.CALLS["node"] == 3  # replayed from the journal, not recomputed


async def test_replaying_turns_false_exactly_when_the_journal_is_exhausted(tether: Tether) -> None:
    first = await tether.run(A.changed_a, None)  # one step, then waits
    tether.signal(first.id, "go", 1)
    run = tether.get(first.id)
    committer = GroupCommitter(tether.store)
    try:
        ctx = Context(run, tether.store, committer, "replay-only", tether.events(first.id))
        assert ctx.replaying
        await ctx.gather()  # a gather consumes a position but is not in the journal
        assert ctx.replaying
    finally:
        committer.close()


async def test_sync_step_timeout_reports_what_the_thread_really_did(tether: Tether) -> None:
    rec = await tether.run(A.sync_timeout_step, None)
    assert "Timeout" in rec.result and "completed" in rec.result
    assert "a thread cannot be interrupted" in rec.result
    failed = [e.data for e in tether.events(rec.id) if e.kind == "step_failed"]
    assert failed[0]["type"] == "Timeout" and "completed" in failed[0]["message"]
    assert A.CALLS["slow_sync"] == 1


async def test_replay_rejects_code_that_goes_past_its_journal(tether: Tether) -> None:
    from tether import NonDeterminismError

    rec = await tether.run(A.sequential, 2)
    assert await tether.replay(rec.id) == 1  # the run's own agent, purely from the journal

    async def longer(ctx: Context, n: int) -> int:
        total = await A.sequential(ctx, n)
        return total + await ctx.step("extra", A.record, "extra")

    with pytest.raises(NonDeterminismError, match=r"step 3: the journal recorded nothing more"):
        await tether.replay(rec.id, longer)
    assert A.CALLS["extra"] == 0 and A.CALLS["seq"] == 2
