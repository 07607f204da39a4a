"""Issue 14: what the guards did, and sandbox execs, in the spans.

Loop interventions and halts are events on the run's span, an approval is a request span and a
durable-wait span (the decision a log event), and a sandbox exec is a span with its exit code.
Real runtime, real guards (the e2e suite's policy, approvers and tools), real bubblewrap.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.guards import agents_guarded as A
from tests.guards.e2e_support import APPROVER_KEYS, APPROVERS, make_guards, open_tether, say
from tether import Tether
from tether.guards import inbox, sign_decision
from tether.models import ScriptedModel, tool_call
from tether.observe import export_run


def exported(t: Tether, run_id: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    export_run(t, run_id, memory)
    return list(memory.get_finished_spans())


def agent_span(spans: list[ReadableSpan]) -> ReadableSpan:
    [agent] = [s for s in spans if s.name.startswith("invoke_agent")]
    return agent


async def test_loop_interventions_and_the_halt_are_events_on_the_run(db_path: str) -> None:
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("search", {"q": "same"})) for _ in range(6)]),
            guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted"
    agent = agent_span(exported(t, run.id))
    names = [e.name for e in agent.events]
    assert "tether.guard.intervention" in names
    [iv] = [e for e in agent.events if e.name == "tether.guard.intervention"][:1]
    assert (iv.attributes or {})["tether.intervention.kind"] == "repeated_call"
    [halt] = [e for e in agent.events if e.name == "tether.guard.halt"]
    assert (halt.attributes or {})["tether.guard"] == "loop"
    assert names.index("tether.guard.intervention") < names.index("tether.guard.halt")
    assert agent.status.status_code is StatusCode.ERROR
    assert "repeated_call" in (agent.status.description or "")
    t.close()


async def test_an_approval_is_a_request_and_a_durable_wait(db_path: str) -> None:
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "4111111111111111",
                                                        "amount": 500})), "refunded"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "refund"})
    assert run.status == "waiting"
    [pending] = inbox.list_pending(t.store)
    req = pending.request
    decision = sign_decision(APPROVER_KEYS["carol"], req.id, "approve", "carol",  # type: ignore[arg-type]
                             req.digest, "ok")
    assert inbox.decide(t, decision, APPROVERS) == "approved"
    assert (await t.drive(run.id)).status == "succeeded"
    spans = exported(t, run.id)
    [ask] = [s for s in spans if s.name == "tether.approval.request refund"]
    [wait] = [s for s in spans if s.name == f"tether.approval.wait {req.id}"]
    [tool] = [s for s in spans if s.name == "execute_tool refund"]
    assert (ask.attributes or {})["tether.guard.action"] == "approve"
    assert (wait.attributes or {})["tether.approval.id"] == req.id
    assert ask.end_time <= wait.start_time <= wait.end_time <= tool.start_time  # type: ignore[operator]
    assert tool.status.status_code is StatusCode.OK
    logs = [e for e in agent_span(spans).events if e.name == "tether.log"]
    assert any("approved by carol" in str((e.attributes or {})["tether.message"]) for e in logs)
    t.close()


async def computes(ctx: Any, _: Any) -> Any:
    return (await ctx.exec("print(6 * 7)", language="python", backend="bwrap"))["exit_code"]


@pytest.mark.sandbox
async def test_a_sandbox_exec_is_a_span_with_its_exit_code(tether: Tether) -> None:
    run = await tether.run(computes, None)
    assert run.status == "succeeded", run.error
    [execs] = [s for s in exported(tether, run.id) if s.name == "tether.sandbox.exec"]
    a = execs.attributes or {}
    assert a["tether.sandbox.exit_code"] == 0 and a["tether.sandbox.backend"] == "bwrap"
    assert a["tether.sandbox.language"] == "python"
    assert execs.status.status_code is StatusCode.OK


def everything_exported(spans: list[ReadableSpan]) -> str:
    """Every string a collector would receive from these spans."""
    parts: list[str] = []
    for s in spans:
        parts += [s.name, s.status.description or ""]
        parts += [f"{k}={v}" for k, v in (s.attributes or {}).items()]
        for e in s.events:
            parts += [e.name, *(f"{k}={v}" for k, v in (e.attributes or {}).items())]
    return "\n".join(parts)


async def test_pii_and_the_sealed_vault_never_leave_in_spans(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile: a run whose task is full of personal data. Without content capture nothing of
    it is exported; with it, the model's side is placeholders only, and the PII vault (sealed,
    journaled as an annotation) is never exported in any form."""
    from tests.guards.test_e2e_pii import MAIL, SECRETS, guards_for, mail_run

    guards = guards_for("""
rules:
  - id: email-internal
    tools: send_email
    effect: allow
    pii: [email, card]
""")
    t, _model, run = await mail_run(db_path, guards, MAIL)
    vault = [e for e in t.events(run.id) if e.kind == "annotation" and "vault" in str(e.name)]
    assert vault, "the run journaled its sealed vault (the case this test is about)"
    blob = str(vault[0].data["vault"])
    for capture in ("false", "true"):
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", capture)
        text = everything_exported(exported(t, run.id))
        assert blob[:24] not in text
        leaked = [s for s in SECRETS if s in text]
        assert leaked == [], (capture, leaked)
    assert "[EMAIL_1]" in text  # content on: the placeholders the model used are there
    t.close()
