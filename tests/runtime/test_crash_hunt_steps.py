"""Crash hunt: SIGKILL a real worker process inside one tool call, at exact moments.

Every test runs real worker processes on a real SQLite journal and kills them with SIGKILL at a
gate (before / after the tool's effect) or while they wait for the journal's write lock (the
commit of the step's outcome). Then a fresh worker resumes the run, the human operator (the
`tether resolve` CLI) decides what the runtime must not decide alone, and the ledger outside the
journal is counted: each side effect exactly once, and the run's result what an uninterrupted
run returns. See `crash_hunt_support.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .crash_hunt_support import MODULE, Lab, tool_ok, write_lock

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def _in_doubt(lab: Lab, run_id: str, key: str) -> None:
    run = lab.wait(run_id, "waiting", in_doubt=True)
    assert run.options["in_doubt"] == {"key": key, "step": "tool:send"}, run.options
    assert f"tether resolve {run_id}" in (run.reason or ""), run.reason


def test_kill_before_the_effect_waits_for_a_human_then_retry_acts_once(lab: Lab) -> None:
    tokens = ["a", "b", "c"]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": tokens})
    lab.arm("b.before")
    lab.worker()
    lab.kill(lab.reached("b.before"))
    assert lab.tokens() == {"a": 1}

    lab.worker()  # takes the run over once the dead worker's lease expired
    _in_doubt(lab, run_id, "2")
    assert lab.tokens() == {"a": 1}, "an in-doubt non-idempotent call was re-run silently"
    assert lab.settle_in_doubt(run_id, "b") == "retry"
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did a", "did b", "did c"]
    lab.assert_exactly_once(tokens)
    starts = lab.step_events(run_id, "step_started")
    assert [e.key for e in starts] == ["1", "2", "2", "3"], starts


def test_kill_after_the_effect_waits_for_a_human_then_skip_keeps_it_once(lab: Lab) -> None:
    tokens = ["a", "b", "c"]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": tokens})
    lab.arm("b.after")
    lab.worker()
    lab.kill(lab.reached("b.after"))
    assert lab.tokens() == {"a": 1, "b": 1}

    lab.worker(cli=True)  # the real `tether worker` this time
    _in_doubt(lab, run_id, "2")
    assert lab.settle_in_doubt(run_id, "b") == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did a", "did b", "did c"]
    lab.assert_exactly_once(tokens)


@pytest.mark.parametrize("last", [False, True], ids=["then-next-step", "then-run-end"])
def test_kill_while_the_outcome_commits(lab: Lab, last: bool) -> None:
    """The tool returned; its completion (which rides with the next step's start, or with the
    run's end) waits for the write lock another process holds; SIGKILL there."""
    tokens = ["a", "b"] if last else ["a", "b", "c"]
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": tokens})
    lab.arm("b.after")
    lab.worker()
    pid = lab.reached("b.after")
    lock = write_lock(lab.db)
    try:
        lab.release("b.after")
        # the worker's commit of b's outcome is now blocked on the lock: the write-ahead log
        # holds no trace of it, whatever the timing of the kill below
        time.sleep(0.3)
        lab.kill(pid)
    finally:
        lock.rollback()
        lock.close()
    assert lab.tokens() == {"a": 1, "b": 1}
    assert not lab.step_events(run_id, "step_completed", "tool:send")[1:], \
        "b's completion reached the journal although its commit was blocked"

    lab.worker()
    _in_doubt(lab, run_id, "2")
    assert lab.settle_in_doubt(run_id, "b") == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == [f"did {t}" for t in tokens]
    lab.assert_exactly_once(tokens)


def test_keyed_tool_is_rerun_with_the_same_key_and_deduplicated(lab: Lab) -> None:
    """A tool taking the idempotency key is re-run by itself (no human), with the key of the
    first attempt, so the API's deduplication holds across the crash."""
    tokens = ["k1", "k2", "k3"]
    run_id = lab.tether.submit(f"{MODULE}:keyed_pipeline", {"tokens": tokens})
    lab.arm("k2.after")
    lab.worker()
    lab.kill(lab.reached("k2.after"))
    lab.worker()
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did k1", "did k2", "did k3"]
    assert not run.options.get("in_doubt")
    lab.assert_exactly_once(tokens)
    k2 = [e for e in lab.entries() if e["token"] == "k2"]
    assert [bool(e.get("dedup")) for e in k2] == [False, True], k2
    assert k2[0]["key"] == k2[1]["key"] == f"{run_id}:{_first_start_seq(lab, run_id, '2')}"


def test_async_tool_killed_after_its_effect_is_in_doubt(lab: Lab) -> None:
    """A coroutine tool (on the worker's event loop) follows the same rule as a thread's."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["x", "y"],
                                                     "tool": "send_async"})
    lab.arm("y.after")
    lab.worker()
    lab.kill(lab.reached("y.after"))
    lab.worker()
    run = lab.wait(run_id, "waiting", in_doubt=True)
    assert run.options["in_doubt"] == {"key": "2", "step": "tool:send_async"}
    lab.cli("resolve", run_id, "--skip", "--result", json.dumps(tool_ok("y", "send_async")))
    assert lab.wait(run_id, "succeeded").result == ["did x", "did y"]
    lab.assert_exactly_once(["x", "y"])


def test_kill_during_a_retried_step_is_in_doubt_again(lab: Lab) -> None:
    """`resolve --retry`, then the retry itself is killed after its effect: the run must ask
    again (never run it a third time silently), and the skip that follows keeps it once."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["a", "b"]})
    lab.arm("b.before")
    lab.worker()
    lab.kill(lab.reached("b.before"))
    w = lab.worker()
    _in_doubt(lab, run_id, "2")
    lab.arm("b.after")
    assert lab.settle_in_doubt(run_id, "b") == "retry"
    assert lab.reached("b.after") == w.pid
    lab.kill(w)
    lab.worker()
    _in_doubt(lab, run_id, "2")
    assert lab.settle_in_doubt(run_id, "b") == "skip"
    assert lab.wait(run_id, "succeeded").result == ["did a", "did b"]
    lab.assert_exactly_once(["a", "b"])
    kinds = [e.kind for e in lab.tether.events(run_id) if e.key == "2"]
    assert kinds == ["step_started", "step_in_doubt", "step_resolved", "step_started",
                     "step_in_doubt", "step_resolved"], kinds


def _first_start_seq(lab: Lab, run_id: str, key: str) -> int:
    return next(e.seq for e in lab.tether.events(run_id)
                if e.kind == "step_started" and e.key == key)


def test_kill_inside_the_step_a_retried_run_executes_again(lab: Lab) -> None:
    """`tether retry` of a failed run re-runs its failed step live; that re-run is killed after
    its effect. The run must stop for a human again (not re-run it silently a third time), and
    nothing the first attempt completed runs again."""
    (lab.gates / "broken").touch()
    run_id = lab.tether.submit(f"{MODULE}:fragile", {"tag": "f"})
    w = lab.worker()
    run = lab.wait(run_id, "failed")
    assert "mail server is down" in (run.error or ""), run.error
    (lab.gates / "broken").unlink()  # the operator fixed the cause
    lab.arm("f-2.after")
    out = lab.cli("retry", run_id, "--detach").stdout
    assert "executes again: step 2 tool:send_unless_broken" in out, out
    assert lab.reached("f-2.after") == w.pid
    lab.kill(w)
    lab.worker()
    run = lab.wait(run_id, "waiting", in_doubt=True)
    assert run.options["in_doubt"]["step"] == "tool:send_unless_broken"
    assert lab.settle_in_doubt(run_id, "f-2", "send_unless_broken") == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == ["did f-1", "did f-2", "did f-3"]
    lab.assert_exactly_once(["f-1", "f-2", "f-3"])
    assert len(lab.step_events(run_id, "step_started", "tool:send")) == 2  # f-1 once, f-3 once


def test_skip_with_the_tools_plain_output_finishes_the_run(lab: Lab) -> None:
    """The operator saw in the outside world that b was sent and gives what the tool returned,
    as `tether resolve`'s help suggests (`--result JSON`: "JSON result to use with --skip")."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["a", "b", "c"]})
    lab.arm("b.after")
    lab.worker()
    lab.kill(lab.reached("b.after"))
    lab.worker()
    _in_doubt(lab, run_id, "2")
    lab.cli("resolve", run_id, "--skip", "--result", json.dumps("did b"))
    run = lab.wait(run_id, "succeeded", "failed")
    if run.status == "failed":  # the operator tries the documented way out
        lab.cli("retry", run_id, "--detach")
        run = lab.wait(run_id, "succeeded", "failed", "waiting")
    assert run.status == "succeeded", (run.status, run.error)
    assert run.result == ["did a", "did b", "did c"]
    lab.assert_exactly_once(["a", "b", "c"])


def test_read_tool_killed_after_its_effect_is_simply_called_again(lab: Lab) -> None:
    """A `read` tool is idempotent unless declared otherwise (docs/tools.md): no human is
    asked, the call is made again (so the outside world sees it twice, which a read allows)."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["r1", "r2"], "tool": "lookup"})
    lab.arm("r1.after")
    lab.worker()
    lab.kill(lab.reached("r1.after"))
    lab.worker()
    run = lab.wait(run_id, "succeeded", "waiting")
    assert run.status == "succeeded" and not run.options.get("in_doubt"), run.reason
    assert run.result == ["did r1", "did r2"]
    assert lab.tokens() == {"r1": 2, "r2": 1}
    starts = lab.step_events(run_id, "step_started", "tool:lookup")
    assert [(e.key, e.data["attempt"], e.data.get("idempotent")) for e in starts] == [
        ("1", 1, True), ("1", 2, True), ("2", 1, True)]
