"""A queue-scripted model resumes from the journal (issue 17 §3): a run that waits for a signal
in the middle and is resumed by another worker process continues with the next scripted item,
instead of starting the script again and re-issuing earlier calls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.runtime import agents_scripted
from tether import Tether
from tether.models import Message, Model, ModelResponse, ScriptedModel

ROOT = Path(__file__).resolve().parents[2]
AGENTS = "tests.runtime.agents_scripted"


class WorkerProcess:
    def __init__(self, db: str) -> None:
        env = {**os.environ, "TETHER_DB": str(db)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "worker", "--poll", "0.05"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return out


def wait_for(db: str, run_id: str, check: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    t = Tether(str(db))
    try:
        while time.monotonic() < deadline:
            run = t.get(run_id)
            if run.status in ("succeeded", "failed") or check in (run.reason or ""):
                return
            time.sleep(0.1)
    finally:
        t.close()
    raise AssertionError(f"run {run_id} never reached {check!r}")


def test_a_second_worker_process_continues_the_script(db_path: str) -> None:
    db = db_path
    t = Tether(str(db))
    run_id = t.submit(f"{AGENTS}:asks_twice_around_a_signal", None)
    first = WorkerProcess(db)
    try:
        wait_for(db, run_id, "signal 'go'")
    finally:
        first.stop()
    t.signal(run_id, "go", None)
    second = WorkerProcess(db)
    try:
        wait_for(db, run_id, "never")
    finally:
        second.stop()
    run = t.get(run_id)
    t.close()
    assert run.status == "succeeded", run.error
    assert run.result == ["first answer", "second answer"]


def test_a_resumed_refund_script_does_not_propose_a_refund_again(db_path: str) -> None:
    """The issue's report: a second refund asked for approval again after a resume."""
    db = db_path
    t = Tether(str(db))
    run_id = t.submit(f"{AGENTS}:refunds_with_approval", None)
    for order in ("A-1", "A-2"):
        worker = WorkerProcess(db)  # a new process for every leg of the run
        try:
            wait_for(db, run_id, f"signal 'approve-{order}'")
        finally:
            worker.stop()
        assert f"approve-{order}" in (t.get(run_id).reason or "")
        t.signal(run_id, f"approve-{order}", None)
    worker = WorkerProcess(db)
    try:
        wait_for(db, run_id, "never")
    finally:
        worker.stop()
    run = t.get(run_id)
    t.close()
    assert run.status == "succeeded", run.error
    assert run.result == ["A-1", "A-2", "done"]


async def test_resumed_in_the_same_process_the_script_is_not_advanced_twice(
        tether: Tether) -> None:
    model = ScriptedModel(["first answer", "second answer", "third answer"])
    agents_scripted.TEXT_SCRIPT, saved = model, agents_scripted.TEXT_SCRIPT
    try:
        run_id = tether.submit(f"{AGENTS}:asks_twice_around_a_signal", None)
        assert (await tether.drive(run_id)).status == "waiting"
        tether.signal(run_id, "go", None)
        record = await tether.drive(run_id)
    finally:
        agents_scripted.TEXT_SCRIPT = saved
    assert record.result == ["first answer", "second answer"]
    assert model.remaining == 1 and model.replays == []  # it answered the first call itself


async def test_a_new_script_object_catches_up_from_the_journal(tether: Tether) -> None:
    """What a new process sees, in one process: a fresh script object meets a journal."""
    # a script of its own for the first leg too: the module's one is used up by earlier runs
    # in this process (this test runs once per store backend)
    saved = agents_scripted.TEXT_SCRIPT
    agents_scripted.TEXT_SCRIPT = ScriptedModel(["first answer", "second answer"])
    fresh = ScriptedModel(["first answer", "second answer", "third answer"])
    try:
        run_id = tether.submit(f"{AGENTS}:asks_twice_around_a_signal", None)
        assert (await tether.drive(run_id)).status == "waiting"
        agents_scripted.TEXT_SCRIPT = fresh
        tether.signal(run_id, "go", None)
        record = await tether.drive(run_id)
        assert record.result == ["first answer", "second answer"]
        assert [r.text for r in fresh.replays] == ["first answer"]
        assert fresh.remaining == 1 and len(fresh.calls) == 1
        again = await tether.replay(run_id)  # a read-only replay tells a known call once only
        assert again == ["first answer", "second answer"] and len(fresh.replays) == 1
    finally:
        agents_scripted.TEXT_SCRIPT = saved


def test_a_function_script_and_the_protocol_default_have_nothing_to_advance() -> None:
    by_function = ScriptedModel(fn=lambda call: "x")
    by_function.replayed([Message.user("q")], ModelResponse(text="x"))
    assert [r.text for r in by_function.replays] == ["x"] and by_function.remaining == 0

    class Echo(Model):
        async def complete(self, messages: Any, **kwargs: Any) -> ModelResponse:
            return ModelResponse(text="echo")

    assert Echo().replayed([Message.user("q")], ModelResponse(text="echo")) is None


def test_wrappers_pass_a_replayed_call_to_the_script_inside() -> None:
    """A ScriptedModel inside CostModel/RetryModel/FallbackModel still resumes where it stopped."""
    from tether.models import CostModel, FallbackModel, RetryModel

    inner = ScriptedModel(["one", "two"])
    wrapped = CostModel(RetryModel(inner))
    wrapped.replayed([Message.user("q")], ModelResponse(text="one", model=inner.name))
    assert inner.remaining == 1
    primary, spare = ScriptedModel(["p1", "p2"], name="p"), ScriptedModel(["s1"], name="s")
    chain = FallbackModel(primary, spare)
    chain.replayed([Message.user("q")], ModelResponse(text="s1", model="s"))  # the spare answered
    assert (primary.remaining, spare.remaining) == (2, 0)
    chain.replayed([Message.user("q")], ModelResponse(text="p1", model="unknown"))
    assert primary.remaining == 1  # unknown: the primary, which answers when nothing fails
