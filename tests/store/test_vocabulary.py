"""The journal vocabulary: names and lenient payload readers every layer shares."""

from __future__ import annotations

from typing import Any

from tether.store import Event
from tether.store import vocabulary as v


def ev(kind: str, name: str | None, data: Any, seq: int = 1) -> Event:
    return Event(run_id="r", seq=seq, kind=kind, key="1", name=name, data=data, ts=float(seq))


def test_step_names_and_families() -> None:
    assert v.model_step("gpt") == "model:gpt" and v.tool_step("search") == "tool:search"
    assert [v.step_family(n) for n in ("model:x", "tool:y", "sandbox.exec", "guard:approval:t",
                                       "charge", None)] == [
        "model", "tool", "exec", "guard", "step", "step"]
    assert v.step_subject("tool:search") == "search" and v.step_subject("charge") == "charge"
    assert v.APPROVAL_STEP == "guard:approval:"


def test_model_call_reader() -> None:
    call = v.model_call(ev("step_completed", "model:m", {
        "model": "m", "usage": {"input_tokens": 7, "output_tokens": 2}, "cost_usd": 0.5,
        "response": {"text": None, "tool_calls": [{"name": "t", "arguments": {}}],
                     "finish_reason": "tool_calls"}}))
    assert call is not None
    assert (call.input_tokens, call.output_tokens, call.cost_usd) == (7, 2, 0.5)
    assert call.tool_calls[0]["name"] == "t"
    # a plain step that someone named model:… is not a model call; other kinds are not either
    assert v.model_call(ev("step_completed", "model:m", 42)) is None
    assert v.model_call(ev("step_started", "model:m", {"usage": {}})) is None


def test_tool_call_and_guard_decision_readers() -> None:
    answered = v.tool_call(ev("step_completed", "tool:delete", {
        "tool": "delete", "ok": False, "output": None, "guard": "policy",
        "error": {"type": "policy_denied", "message": "no"}}))
    assert answered is not None and answered.answered_by == "policy" and not answered.ok
    assert answered.error_type == "policy_denied"
    started = ev("step_started", "tool:delete", {
        "attempt": 1, "short_circuit": {"guard": "policy", "rule": "default"},
        "meta": {"kind": "tool", "policy": {"action": "deny", "rule": "default",
                                            "reason": "deny by default", "via": "gateway"}}})
    d = v.guard_decision(started)
    assert d is not None and (d.action, d.rule, d.short_circuit) == ("deny", "default", "policy")
    assert v.guard_decision(ev("step_started", "tool:x", {"meta": {}})) is None
    assert v.tool_call(ev("step_completed", "tool:x", "not a dict")) is None


def test_exec_result_from_exec_steps_and_code_tools() -> None:
    res = {"exit_code": 0, "stdout": "hi"}
    assert v.exec_result(ev("step_completed", "sandbox.exec", res)) == res
    assert v.exec_result(ev("step_completed", "tool:python", {"ok": True, "output": res})) == res
    assert v.exec_result(ev("step_completed", "tool:python", {"ok": False, "output": None})) is None


def test_usage_over_a_journal() -> None:
    events = [ev("step_completed", "model:a", {"usage": {"input_tokens": 3, "output_tokens": 1}},
                 1),
              ev("step_completed", "model:a", {"usage": {"input_tokens": 4, "output_tokens": 2},
                                               "cost_usd": 0.25}, 2)]
    assert v.usage_of(events) == (7, 3, 0.25)
    assert v.usage_of(events[:1]) == (3, 1, None)
