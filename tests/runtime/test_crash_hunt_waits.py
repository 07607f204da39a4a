"""Crash hunt: SIGKILLed workers around durable waits — signals, timers, approvals — and child
runs, on a real SQLite journal with real worker processes (see `crash_hunt_support.py`).

The waits are answered while no worker is alive, and kills land inside the steps that follow a
wait, so a resumed run must take the wait's outcome from the journal (a consumed signal is not
waited for again, a fired timer not restarted, an approval not asked for twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .crash_hunt_support import MODULE, Lab, write_lock

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    yield lab
    lab.close()


# -- signals ----------------------------------------------------------------------------------
def test_signal_sent_while_no_worker_lives_then_kill_after_the_next_effect(lab: Lab) -> None:
    run_id = lab.tether.submit(f"{MODULE}:signalled", {"tag": "s"})
    w = lab.worker()
    lab.wait(run_id, "waiting")
    assert lab.tether.awaited_signals(run_id) == ["go"]
    lab.kill(w)  # the run is a row; nobody holds it
    lab.cli("signal", run_id, "go", '"P"')  # answered while no worker lives
    lab.arm("s-2-P.after")
    w = lab.worker()
    assert lab.reached("s-2-P.after") == w.pid
    lab.kill(w)
    # a second signal arrives while the run is dead, then while it waits for a human: it must
    # neither wake the in-doubt run nor be lost
    lab.cli("signal", run_id, "go2", '"Q"')
    lab.worker()
    run = lab.wait(run_id, "waiting", in_doubt=True)
    assert run.options["in_doubt"]["step"] == "tool:send"
    time.sleep(0.3)
    assert lab.tether.get(run_id).status == "waiting"
    assert lab.settle_in_doubt(run_id, "s-2-P") == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result == {"out": ["did s-1", "did s-2-P", "did s-3-Q"], "payloads": ["P", "Q"]}
    lab.assert_exactly_once(["s-1", "s-2-P", "s-3-Q"])
    received = lab.step_events(run_id, "signal_received")
    assert [(e.name, e.data["payload"]) for e in received] == [("go", "P"), ("go2", "Q")]


def test_kill_between_the_consumed_signal_and_the_next_effect(lab: Lab) -> None:
    run_id = lab.tether.submit(f"{MODULE}:signalled", {"tag": "t"})
    lab.arm("t-2-P.before")
    w = lab.worker()
    lab.wait(run_id, "waiting")
    lab.tether.signal(run_id, "go", "P")
    assert lab.reached("t-2-P.before") == w.pid
    lab.kill(w)
    lab.worker()
    lab.wait(run_id, "waiting", in_doubt=True)
    assert lab.settle_in_doubt(run_id, "t-2-P") == "retry"
    lab.wait(run_id, "waiting", in_doubt=False)  # now for go2: go was not asked for again
    assert lab.tether.awaited_signals(run_id) == ["go2"]
    lab.tether.signal(run_id, "go2", "Q")
    assert lab.wait(run_id, "succeeded").result["payloads"] == ["P", "Q"]
    lab.assert_exactly_once(["t-1", "t-2-P", "t-3-Q"])


# -- timers -----------------------------------------------------------------------------------
def test_long_timer_fires_after_its_worker_died(lab: Lab) -> None:
    run_id = lab.tether.submit(f"{MODULE}:timed", {"tag": "L", "sleep": 1.5})
    w = lab.worker()
    run = lab.wait(run_id, "waiting")
    assert run.wake_at is not None
    lab.kill(w)
    lab.arm("L-2.after")
    w = lab.worker()
    assert lab.reached("L-2.after") == w.pid  # the timer fired in the new worker
    lab.kill(w)
    lab.worker()
    lab.wait(run_id, "waiting", in_doubt=True)
    assert lab.settle_in_doubt(run_id, "L-2") == "skip"
    run = lab.wait(run_id, "succeeded")
    assert run.result["out"] == ["did L-1", "did L-2"]
    assert run.result["slept"] >= 1.5
    lab.assert_exactly_once(["L-1", "L-2"])
    assert len(lab.step_events(run_id, "timer_started")) == 1
    assert len(lab.step_events(run_id, "timer_fired")) == 1


def test_kill_during_an_inline_timer_keeps_its_deadline(lab: Lab) -> None:
    """A short sleep is slept inside the worker: killed there, the next worker must wait only
    for what is left of the journaled deadline, not start the timer again."""
    run_id = lab.tether.submit(f"{MODULE}:timed", {"tag": "I", "sleep": 0.9})
    w = lab.worker()
    lab.wait_until(lambda: lab.step_events(run_id, "timer_started"), "the timer's start")
    lab.kill(w)
    started = lab.step_events(run_id, "timer_started")[0]
    lab.worker()
    run = lab.wait(run_id, "succeeded")
    fired = lab.step_events(run_id, "timer_fired")
    assert len(fired) == 1 and fired[0].ts >= started.data["fire_at"]
    assert run.result["out"] == ["did I-1", "did I-2"]
    lab.assert_exactly_once(["I-1", "I-2"])


# -- approvals --------------------------------------------------------------------------------
def _approver(lab: Lab) -> None:
    lab.cli("approvals", "--keygen", str(lab.root / "alice"))
    (lab.root / "approvers.yaml").write_text(
        json.dumps({"alice": (lab.root / "alice.pub").read_text()}))
    lab.env["TETHER_APPROVERS"] = str(lab.root / "approvers.yaml")


def _approve(lab: Lab, approval_id: str) -> None:
    lab.cli("approve", approval_id, "--reason", "ok", "--approver", "alice",
            "--key", str(lab.root / "alice.key"))


@pytest.mark.parametrize("where", ["before", "after"])
def test_approved_refund_killed_in_its_call_is_done_once_and_asked_once(lab: Lab,
                                                                        where: str) -> None:
    _approver(lab)
    run_id = lab.tether.submit(f"{MODULE}:governed", {"tag": "A"},
                               guards=f"{MODULE}:GUARDS")
    w = lab.worker()
    run = lab.wait(run_id, "waiting")
    assert "approval" in (run.reason or ""), run.reason
    lab.kill(w)
    _approve(lab, f"{run_id}.a1")  # decided while no worker lives
    lab.arm(f"refund-A.{where}")
    w = lab.worker(cli=True)
    assert lab.reached(f"refund-A.{where}") == w.pid
    lab.kill(w)
    lab.worker()
    run = lab.wait(run_id, "waiting", in_doubt=True)
    assert run.options["in_doubt"]["step"] == "tool:refund"
    if where == "after":
        lab.cli("resolve", run_id, "--skip", "--result", json.dumps(
            {"tool": "refund", "ok": True, "output": "REFUNDED 250.0 for A", "error": None}))
    else:
        assert not lab.tokens()["refund-A"]
        lab.cli("resolve", run_id, "--retry")
    run = lab.wait(run_id, "succeeded")
    assert run.result == {"a": "did A-1", "refund": "REFUNDED 250.0 for A", "refund_ok": True,
                          "b": "did A-2"}
    lab.assert_exactly_once(["A-1", "refund-A", "A-2"])
    requests = lab.step_events(run_id, "step_started", "guard:approval:refund")
    assert len(requests) == 1, "the approval was asked for again after the crash"
    assert "no pending approvals" in lab.cli("approvals").stdout


# -- children ---------------------------------------------------------------------------------
def test_kill_the_tree_while_children_run(lab: Lab) -> None:
    """Two workers; a child's worker is killed after the child's effect, while its siblings and
    the parent are in flight. No child is spawned twice, each effect happens once."""
    run_id = lab.tether.submit(f"{MODULE}:parent", {"tag": "T", "children": 3})
    lab.arm("T-c1.after")
    lab.worker()
    lab.worker()
    victim = lab.reached("T-c1.after")
    lab.kill(victim)
    lab.worker()
    child_id = f"{run_id}.3"  # the second spawn, key 3
    lab.wait(child_id, "waiting", in_doubt=True)
    # a sibling the dead worker was executing may be in doubt too: the human decides each
    run, decisions = lab.finish_with_human(run_id, lambda run: run.input["token"])
    assert (child_id, "skip") in decisions, decisions
    assert run.status == "succeeded", run
    for doubted, _ in decisions:  # only steps the dead worker was executing went in doubt
        assert all(f":{victim}:" in o for o in lab.in_doubt_owners(doubted)), decisions
    assert run.result == {"first": "did T-p0", "children": ["did T-c0", "did T-c1", "did T-c2"],
                          "last": "did T-pz"}
    lab.assert_exactly_once(["T-p0", "T-c0", "T-c1", "T-c2", "T-pz"])
    runs = lab.tether.runs(limit=100)
    assert sorted(r.id for r in runs) == sorted(
        [run_id, f"{run_id}.2", f"{run_id}.3", f"{run_id}.4"])
    assert all(r.status == "succeeded" for r in runs)


def test_kill_while_a_child_commits_its_end(lab: Lab) -> None:
    """A child's last effect returned; its end (which also wakes the parent) waits for the write
    lock; SIGKILL there. The child resumes, ends once, and the parent wakes and finishes."""
    run_id = lab.tether.submit(f"{MODULE}:parent", {"tag": "E", "children": 2})
    lab.arm("E-c0.after")
    w = lab.worker()
    assert lab.reached("E-c0.after") == w.pid
    lock = write_lock(lab.db)
    try:
        lab.release("E-c0.after")
        time.sleep(0.3)
        lab.kill(w)
    finally:
        lock.rollback()
        lock.close()
    lab.worker()
    child_id = f"{run_id}.2"
    lab.wait(child_id, "waiting", in_doubt=True)
    # its sibling ran in the same worker, and may have been stopped in its step too
    run, decisions = lab.finish_with_human(run_id, lambda run: run.input["token"])
    assert (child_id, "skip") in decisions, decisions
    assert run.status == "succeeded", run
    assert run.result["children"] == ["did E-c0", "did E-c1"]
    lab.assert_exactly_once(["E-p0", "E-c0", "E-c1", "E-pz"])
    ends = [e for e in lab.tether.events(child_id) if e.kind == "run_completed"]
    assert len(ends) == 1
    joins = lab.step_events(run_id, "child_completed")
    assert sorted(e.name for e in joins) == [f"{run_id}.2", f"{run_id}.3"]


def test_kill_the_parent_mid_step_while_its_children_finish_elsewhere(lab: Lab) -> None:
    """The parent's worker (executing only the parent) dies inside the parent's own step while
    another worker runs the children; they finish while the parent is still marked running
    under the dead lease (nothing to wake). The worker that takes the parent over must find
    them finished: no child again, no effect twice, no parent waiting forever."""
    run_id = lab.tether.submit(f"{MODULE}:busy_parent", {"tag": "B", "children": 2})
    lab.arm("B-mid.before")
    lab.arm("B-c0.after")
    parent_worker = lab.worker(concurrency=1)  # takes the parent, and nothing else
    assert lab.reached("B-mid.before") == parent_worker.pid
    children_worker = lab.worker()
    assert lab.reached("B-c0.after") == children_worker.pid
    lab.kill(parent_worker)
    lab.release("B-c0.after")
    lab.wait(f"{run_id}.1", "succeeded")
    lab.wait(f"{run_id}.2", "succeeded")
    run = lab.wait(run_id, "waiting", in_doubt=True)  # taken over after the lease expired
    assert run.options["in_doubt"]["key"] == "3"
    assert lab.settle_in_doubt(run_id, "B-mid") == "retry"
    run = lab.wait(run_id, "succeeded")
    assert run.result == {"mid": "did B-mid", "children": ["did B-c0", "did B-c1"]}
    lab.assert_exactly_once(["B-c0", "B-c1", "B-mid"])
    assert sorted(r.id for r in lab.tether.runs(limit=10)) == sorted(
        [run_id, f"{run_id}.1", f"{run_id}.2"])


# -- two workers, one journal -----------------------------------------------------------------
def test_live_worker_in_a_long_step_is_not_taken_over(lab: Lab) -> None:
    """A step that blocks for 3 lease TTLs in a live worker: the heartbeat keeps the lease, the
    second worker must not take the run and start the step again."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["a", "b"]})
    lab.arm("b.before")
    first = lab.worker()
    assert lab.reached("b.before") == first.pid
    lab.worker()
    time.sleep(3 * lab.lease_ttl)
    assert [e.kind for e in lab.tether.events(run_id) if e.kind == "run_resumed"] == []
    lab.release("b.before")
    assert lab.wait(run_id, "succeeded").result == ["did a", "did b"]
    lab.assert_exactly_once(["a", "b"])
    assert len(lab.step_events(run_id, "step_started")) == 2


def test_second_worker_takes_over_only_after_the_lease_expired(lab: Lab) -> None:
    lab.lease_ttl = 2.0
    run_id = lab.tether.submit(f"{MODULE}:keyed_pipeline", {"tokens": ["k1", "k2"]})
    lab.arm("k2.after")
    first = lab.worker()
    assert lab.reached("k2.after") == first.pid
    second = lab.worker()
    [(owner, expires)] = lab.tether.leases([run_id]).values()
    assert f":{first.pid}:" in owner
    lab.kill(first)
    run = lab.wait(run_id, "succeeded")
    resumed = lab.step_events(run_id, "run_resumed")
    assert len(resumed) == 1 and f":{second.pid}:" in resumed[0].data["worker"]
    assert resumed[0].ts >= expires - 0.05, "taken over before the dead worker's lease expired"
    assert run.result == ["did k1", "did k2"]
    lab.assert_exactly_once(["k1", "k2"])
