"""Loops on the real runtime: semantic and repeated-call loops, circuit breaker, durable retries."""

from __future__ import annotations

from tether.guards import LoopConfig, RetryPolicy
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import STUCK, journal, make_guards, open_tether, replay_only, say

# ---------------------------------------------------------------------------- loops


async def test_semantic_loop_intervention_then_halt(db_path, embedder):
    guards = make_guards(embedder)
    model = ScriptedModel([say(s, tool_call("search", {"q": f"paris {i}"}))
                           for i, s in enumerate(STUCK)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "weather in Paris?"})
    assert run.status == "halted" and "semantic_loop" in run.reason
    assert len(model.calls) == 6
    # the 6th request carried the intervention: a warning, trimmed history, more temperature
    warned = model.calls[5]
    assert "going in circles" in (warned.messages[-1].content or "")
    assert warned.params.get("temperature", 0) > 0
    assert len(warned.messages) < len(model.calls[4].messages) + 2
    assert all("going in circles" not in (m.content or "") for c in model.calls[:5]
               for m in c.messages)
    assert any(e.kind == "log" and "loop intervention" in e.data["message"]
               for e in journal(t, run.id))
    t.close()


async def test_repeated_tool_call_intervention_then_halt(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("search", {"q": "same"})) for _ in range(6)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted" and "repeated_call" in run.reason
    assert "repeating yourself" in (model.calls[3].messages[-1].content or "")
    assert [n for n, _ in A.EXECUTED].count("search") == 4
    t.close()


async def test_circuit_breaker_makes_tool_unavailable(db_path):
    guards = make_guards(None, breaker_threshold=2, loops=LoopConfig(repeat_errors=50))
    model = ScriptedModel([say("", tool_call("flaky", {"n": i})) for i in range(4)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded"
    kinds = [o["error"]["type"] for o in run.result["observations"]]
    assert kinds[:2] == ["execution_error"] * 2 and kinds[2:] == ["tool_unavailable"] * 2
    assert len(A.EXECUTED) == 2
    assert "unavailable" in run.result["observations"][2]["error"]["message"]
    # a refusal is the tool step's own answer (no extra step per call), so a replay returns it
    # whatever the replaying worker's breakers say: here all closed, in `guards` still open
    started = [e for e in journal(t, run.id) if e.kind == "step_started"
               and e.name == "tool:flaky"]
    assert [e.data.get("short_circuit", {}).get("guard") for e in started] == \
        [None, None, "breaker", "breaker"]
    assert not any(e.name.startswith("guard:") for e in journal(t, run.id)
                   if e.kind == "step_started")
    assert guards.breakers.states() == {"flaky": "open"}
    assert await replay_only(t, guards, run.id, A.react) == run.result
    fresh = make_guards(None, breaker_threshold=2, loops=LoopConfig(repeat_errors=50))
    A.STATE["guards"] = fresh
    assert await replay_only(t, fresh, run.id, A.react) == run.result
    assert fresh.breakers.states() == {}  # a replay neither asks nor tells a breaker
    t.close()


async def test_retries_are_journaled_and_continue_after_a_restart(db_path):
    guards = make_guards(None, retry=RetryPolicy(max_attempts=3, base_delay_s=1.2, factor=1,
                                                 jitter="none"))
    A.reset(ScriptedModel([say("", tool_call("wobbly", {"n": 1})), "done"]), guards)
    t = open_tether(db_path, guards)
    run_id = t.submit(A.react, {"task": "x"})
    # the worker stops once attempt 1 failed: its 1.2 s back-off is a durable timer
    await t.worker().serve(until=lambda: t.get(run_id).status == "waiting")
    assert t.get(run_id).status == "waiting" and len(A.EXECUTED) == 1
    t.close()
    t2 = open_tether(db_path, guards)  # a new worker: the retry count comes from the journal
    done = await t2.drive(run_id)
    assert done.status == "succeeded", done.error
    assert [n for n, _ in A.EXECUTED] == ["wobbly"] * 3  # 3 attempts in all, not 3 more
    assert done.result["observations"][0]["ok"] is True
    events = journal(t2, run_id)
    assert sum(1 for e in events if e.kind == "step_started" and e.name == "tool:wobbly") == 3
    assert sum(1 for e in events if e.kind == "timer_started") == 2
    # retries are not loops: no intervention was injected
    assert not any(e.kind == "log" and "intervention" in e.data["message"] for e in events)
    assert await replay_only(t2, guards, run_id, A.react) == done.result
    t2.close()
