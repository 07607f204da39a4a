"""The policy gateway on the real runtime: denials, allowed calls, bypass attempts, honeypots."""

from __future__ import annotations

from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import journal, make_guards, open_tether, replay_only, say, search_forever


# --------------------------------------------------------------------- policy gateway
async def test_denied_tool_never_executes_and_denial_is_journaled(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("write_file", {"path": "/etc/passwd",
                                                            "content": "root::0:0"})), "ok"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded" and A.EXECUTED == []
    obs = run.result["observations"][0]
    assert obs["ok"] is False and obs["error"]["type"] == "policy_denied"
    # the denial is the tool step's own answer: started (with the deciding rule) and completed,
    # never executed; no other step was added for it
    events = journal(t, run.id)
    started = [e for e in events if e.kind == "step_started" and e.name == "tool:write_file"]
    assert len(started) == 1 and started[0].data["short_circuit"] == {"guard": "policy",
                                                                      "rule": "default"}
    assert "outside /workspace/out" in started[0].data["meta"]["policy"]["reason"]
    completed = [e for e in events if e.kind == "step_completed" and e.name == "tool:write_file"]
    assert completed[0].key == started[0].key and completed[0].data["guard"] == "policy"
    assert completed[0].data["error"]["type"] == "policy_denied"
    assert not any(e.kind.startswith("step_") and e.name.startswith("guard:")
                   and not e.name.startswith("guard:paths:") for e in events)
    # (the one guard record is the path the policy judged, journaled for replay)
    assert [e.data for e in events if e.name == "guard:paths:write_file"] == [
        {"path": "/etc/passwd", "content": "root::0:0"}]
    assert "ERROR: denied by policy" in (model.calls[1].messages[-1].content or "")
    assert await replay_only(t, guards, run.id, A.react) == run.result
    t.close()


async def test_allowed_call_journals_its_rule(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("sql_query", {"query": "select 1"})), "ok"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    started = [e for e in journal(t, run.id) if e.kind == "step_started"
               and e.name == "tool:sql_query"]
    assert started[0].data["meta"]["policy"]["rule"] == "sql"
    assert started[0].data["meta"]["policy"]["via"] == "gateway"
    assert A.EXECUTED == [("sql_query", {"query": "select 1"})]
    t.close()


async def test_agent_code_bypassing_the_gateway_is_still_refused(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.direct, {"tool": "delete_all"})
    assert run.status == "failed" and "denied" in (run.error or "")
    run2 = await t.run(A.direct, {"tool": "transfer", "args": {"to": "x", "amount": 1}})
    assert run2.status == "failed" and "approve required" in (run2.error or "")
    run3 = await t.run(A.direct, {"tool": "search", "args": {"q": "ok"}})
    assert run3.status == "succeeded"
    assert A.EXECUTED == [("search", {"q": "ok"})]
    assert any(e.kind == "log" and "policy refused" in e.data["message"]
               for e in journal(t, run.id))
    t.close()


async def test_honeypot_simulates_success_and_flags_run(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("shutdown", {})), "done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded" and A.EXECUTED == []
    assert run.result["observations"][0]["ok"] is True
    flags = [e for e in journal(t, run.id) if e.kind == "run_flagged"]
    assert len(flags) == 1 and flags[0].data["tool"] == "shutdown"
    assert run.flags == [{"reason": "honeypot tool 'shutdown' was called", "flag": "honeypot",
                          "tool": "shutdown", "rule": "honeypot:shutdown"}]
    started = next(e for e in journal(t, run.id) if e.kind == "step_started"
                   and e.name == "tool:shutdown")
    assert started.data["short_circuit"]["guard"] == "honeypot"
    assert await replay_only(t, guards, run.id, A.react) == run.result
    assert len(t.get(run.id).flags) == 1  # flagged once, however often the run is replayed
    t.close()
