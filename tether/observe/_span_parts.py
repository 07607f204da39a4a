"""Small pieces the span builder puts on a step's span: a step's shape, a model's tool-call
proposals, a policy decision, a sandbox result (kept apart from the builder's event dispatch)."""

from __future__ import annotations

import json
from typing import Any

from tether.store import Event
from tether.store import vocabulary as v

from ._span_records import AttrValue, SpanEvent, SpanKind, SpanRecord


def as_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def short_agent(ref: str) -> str:
    return ref.rpartition(":")[2] or ref


def provider_of(model: str) -> tuple[str, str]:
    """(provider, model) from Tether's `provider:model` names ("scripted" has no provider)."""
    provider, sep, name = model.partition(":")
    return (provider, name) if sep else ("tether", model)


#: a step's span name, span kind, the attributes its name implies, and its family
StepShape = tuple[str, SpanKind, dict[str, AttrValue], str]


def step_shape(step: str | None, meta: dict[str, Any]) -> StepShape:
    """A step's span name, kind and the attributes its name implies."""
    family = v.step_family(step)
    subject = v.step_subject(step)
    attrs: dict[str, AttrValue] = {}
    shape: StepShape = (f"tether.step {step}", "internal", attrs, family)
    if family == "model":
        provider, requested = provider_of(str(meta.get("model") or subject))
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                 "gen_ai.request.model": requested}
        shape = (f"chat {requested}", "client", attrs, family)
    elif family == "tool":
        # no `gen_ai.tool.type` (Recommended, and always "function" here) nor the tool's
        # version: every attribute costs the OTLP encoder ~5 µs per span, most of what
        # tracing costs a cheap step. A side effect other than a read is worth filtering on
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": subject}
        if meta.get("side_effect") not in (None, "read"):
            attrs["tether.tool.side_effect"] = str(meta["side_effect"])
        shape = (f"execute_tool {subject}", "internal", attrs, family)
    elif family == "exec":
        shape = ("tether.sandbox.exec", "internal", attrs, family)
    elif step and step.startswith(v.APPROVAL_STEP):
        shape = (f"tether.approval.request {step[len(v.APPROVAL_STEP):]}", "internal",
                 attrs, "approval")
    return shape


#: a tool call a model proposed and no tool step has answered yet (for the mind-log): its call
#: id, the tool's name, the arguments and the model's text. A plain tuple: one is made for every
#: model call live export follows, and a dataclass cost ~0.4 µs more each
Proposal = tuple[str, str, Any, str]


def decided(span: SpanRecord, ts: float, d: v.GuardDecision) -> None:
    """A policy decision on a step: attributes for filtering, an event for the timeline."""
    attrs: dict[str, AttrValue] = {"tether.guard.action": d.action,
                                   "tether.guard.reason": d.reason}
    if d.rule:
        attrs["tether.guard.rule"] = d.rule
    if d.policy:
        attrs["tether.guard.policy"] = d.policy
    if d.short_circuit:
        attrs["tether.guard.answered_by"] = d.short_circuit
    span.attributes.update(attrs)
    span.events.append(SpanEvent("tether.guard.decision", ts, dict(attrs)))


def exec_done(span: SpanRecord, res: dict[str, Any]) -> None:
    code = res.get("exit_code")
    span.attributes["tether.sandbox.exit_code"] = int(code) if isinstance(code, int) else -1
    if isinstance(res.get("duration_ms"), int | float):
        span.attributes["tether.sandbox.duration_ms"] = float(res["duration_ms"])
    if code == 0:
        span.status = "ok"
    else:
        span.status, span.status_message = "error", f"exit code {code}"
        span.attributes["error.type"] = "tether.sandbox.exit"


def run_level(e: Event, run: SpanRecord) -> None:
    """A run-level fact (a loop intervention, a log line, a refused spawn, a flag, a step in
    doubt, an annotation) as an event on the run's span."""
    if (iv := v.loop_intervention(e)) is not None:
        run.events.append(SpanEvent("tether.guard.intervention", e.ts, {
            "tether.guard": "loop", "tether.intervention.kind": iv.kind,
            "tether.intervention.evidence": iv.evidence}))
    elif e.kind == v.LOG:
        data = e.data if isinstance(e.data, dict) else {"message": e.data}
        run.events.append(SpanEvent("tether.log", e.ts, {
            "tether.message": str(data.get("message") or "")}))
    elif e.kind == v.CHILD_REJECTED:
        data = e.data if isinstance(e.data, dict) else {}
        run.events.append(SpanEvent("tether.guard.decision", e.ts, {
            "tether.guard.action": "deny", "tether.guard": "depth",
            "tether.guard.reason": f"spawning {e.name} would pass the depth limit "
            f"{data.get('limit')}"}))
    elif e.kind == v.RUN_FLAGGED:
        data = e.data if isinstance(e.data, dict) else {}
        run.events.append(SpanEvent("tether.run.flagged", e.ts, {
            "tether.reason": str(data.get("reason") or e.name or "")}))
        run.attributes["tether.run.flagged"] = True
    elif e.kind in (v.STEP_IN_DOUBT, v.STEP_RESOLVED):
        data = e.data if isinstance(e.data, dict) else {}
        run.events.append(SpanEvent(f"tether.{e.kind}", e.ts, {
            "tether.step": str(e.name), "tether.step.key": str(e.key),
            **({"tether.action": str(data["action"])} if "action" in data else {})}))
    elif e.kind == v.ANNOTATION:  # its data may be sealed secrets (the PII vault): name only
        run.events.append(SpanEvent("tether.annotation", e.ts, {"tether.name": str(e.name)}))
