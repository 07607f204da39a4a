"""What one run did, as facts the KPIs and the OTel metrics are computed from.

Both read a run only through its journal (via `tether.store.vocabulary`), so `tether stats`, the
live metrics and a run exported after the fact agree on every figure. A replayed step appends
nothing to the journal, which is why a fact derived from it is counted once however often the run
was resumed.

A step's duration runs from its *latest* `step_started` to its completion: a step re-run after a
crash (an idempotent model call, a resolved in-doubt tool) took as long as its last attempt, not
as long as the dead worker's lease was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tether.store import Event
from tether.store import vocabulary as v

#: the annotation a planning strategy journals with its plan: `ctx.annotate("plan", {"steps":
#: [...]})`; each step of it is one planned tool call
PLAN_ANNOTATION = "plan"

ToolOutcome = Literal["ok", "error", "refused"]


@dataclass(frozen=True)
class ModelFact:
    """One model call (a `model:` step that completed or failed)."""

    seq: int
    ts: float  # when it ended
    model: str  # the model asked (the step's subject, e.g. "openai:gpt-4o-mini")
    response_model: str  # the model that answered, as the provider named it
    duration_s: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    finish_reason: str | None = None
    error_type: str | None = None  # the step failed (the provider raised)
    thought: bool = False  # the reply carried text besides its tool calls (the "mind-log")


@dataclass(frozen=True)
class ToolFact:
    """One tool call or sandbox exec (a `tool:` or `sandbox.exec` step that ended)."""

    seq: int
    ts: float
    tool: str  # the tool's name; "sandbox.exec" for ctx.exec
    outcome: ToolOutcome  # "refused": the guards answered it and it did not run
    duration_s: float | None
    error_type: str | None = None
    answered_by: str | None = None  # the guard that answered a refused call


@dataclass
class RunFacts:
    """Everything the KPIs need from one run's journal."""

    run_id: str
    agent: str = "?"
    tenant: str = "default"
    status: str | None = None  # from the journal's final event; None while it runs
    started_at: float | None = None  # the first event's time (submission)
    ended_at: float | None = None
    models: list[ModelFact] = field(default_factory=list)
    tools: list[ToolFact] = field(default_factory=list)
    loop_interventions: int = 0
    #: the guard behind each halt ("budget", "loop", ...; "other"): a halted run that was retried
    #: and halted again counts twice
    halts: list[str] = field(default_factory=list)
    planned_steps: int | None = None  # None: no plan was journaled


def run_facts(events: list[Event], run_id: str | None = None, *,
              after_seq: int = 0) -> RunFacts:
    """The facts of one run, from its journal in seq order; with `after_seq`, only of the events
    after it (the earlier ones still say which agent and tenant the run belongs to)."""
    facts = RunFacts(run_id=run_id or (events[0].run_id if events else ""))
    opened: dict[str, float] = {}  # key -> latest step_started time
    for e in events:
        if e.seq <= after_seq:
            if e.kind == v.RUN_SUBMITTED:
                _run_event(facts, e)
            continue
        if facts.started_at is None:
            facts.started_at = e.ts
        if e.kind == v.STEP_STARTED and e.key is not None:
            opened[e.key] = e.ts
            continue
        if e.kind in (v.STEP_COMPLETED, v.STEP_FAILED):
            start = opened.pop(e.key, None) if e.key is not None else None
            _step(facts, e, None if start is None else max(0.0, e.ts - start))
        else:
            _run_event(facts, e)
    return facts


def _step(facts: RunFacts, e: Event, took: float | None) -> None:
    family = v.step_family(e.name)
    data = e.data if isinstance(e.data, dict) else {}
    if family == "model":
        _model(facts, e, took, data)
    elif family in ("tool", "exec"):
        _tool(facts, e, took, data, family)


def _model(facts: RunFacts, e: Event, took: float | None, data: dict[str, Any]) -> None:
    asked = v.step_subject(e.name)
    if e.kind == v.STEP_FAILED:
        facts.models.append(ModelFact(e.seq, e.ts, asked, asked, took,
                                      error_type=str(data.get("type") or "error")))
        return
    call = v.model_call(e)
    if call is None:
        return
    facts.models.append(ModelFact(
        e.seq, e.ts, asked, call.model, took, call.input_tokens, call.output_tokens,
        call.cost_usd, call.finish_reason, thought=bool(call.text.strip())))


def _tool(facts: RunFacts, e: Event, took: float | None, data: dict[str, Any],
          family: str) -> None:
    name = v.EXEC_STEP if family == "exec" else v.step_subject(e.name)
    if e.kind == v.STEP_FAILED:  # the runtime failed the step (its time bound, a crash)
        facts.tools.append(ToolFact(e.seq, e.ts, name, "error", took,
                                    error_type=str(data.get("type") or "error")))
        return
    if family == "exec":
        result = v.exec_result(e)
        if result is None:
            return
        ok = result.get("exit_code") == 0
        facts.tools.append(ToolFact(e.seq, e.ts, name, "ok" if ok else "error", took,
                                    None if ok else f"exit {result.get('exit_code')}"))
        return
    call = v.tool_call(e)
    if call is None:
        return
    outcome: ToolOutcome = "refused" if call.answered_by else ("ok" if call.ok else "error")
    facts.tools.append(ToolFact(e.seq, e.ts, call.tool, outcome, took,
                                None if call.ok else call.error_type, call.answered_by))


def _run_event(facts: RunFacts, e: Event) -> None:
    data = e.data if isinstance(e.data, dict) else {}
    if e.kind == v.RUN_SUBMITTED:
        facts.agent = str(data.get("agent") or facts.agent)
        facts.tenant = str(data.get("tenant") or facts.tenant)
    elif e.kind in v.RUN_ENDS:
        facts.status = _STATUS[e.kind]
        facts.ended_at = e.ts
        if (halt := v.halt_record(e)) is not None:
            facts.halts.append(halt.guard or "other")
    elif e.kind == v.RUN_RETRIED:
        facts.status = None  # running again: the earlier end is not the run's outcome
        facts.ended_at = None
    elif v.loop_intervention(e) is not None:
        facts.loop_interventions += 1
    elif e.kind == v.ANNOTATION and e.name == PLAN_ANNOTATION:
        steps = data.get("steps")
        if isinstance(steps, list):
            facts.planned_steps = (facts.planned_steps or 0) + len(steps)


_STATUS = {v.RUN_COMPLETED: "succeeded", v.RUN_FAILED: "failed", v.RUN_HALTED: "halted",
           v.RUN_CANCELLED: "cancelled"}
