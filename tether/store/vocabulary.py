"""The journal's vocabulary: event kinds, step names, and typed readers for their payloads.

Journals are stored for years and read by many parts of Tether — replay, the guards' accounting,
the sandbox's workspace, the CLI's timeline, the demo, later tracing and evaluation. They must all
agree byte for byte on what an event means, so the names and the shapes are written down once,
here, at the bottom of the layers where every reader can import them; nobody else parses
`"model:"` prefixes or digs `usage` out of a payload dict.

Readers are lenient on purpose: a journal written by an older Tether, or by agent code that named
a plain step `model:x`, yields `None` or zeros rather than an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._records import Event

# -- event kinds ----------------------------------------------------------------------------------
RUN_SUBMITTED = "run_submitted"
RUN_STARTED = "run_started"
RUN_RESUMED = "run_resumed"
RUN_COMPLETED = "run_completed"
RUN_FAILED = "run_failed"
RUN_HALTED = "run_halted"
RUN_CANCELLED = "run_cancelled"
#: a failed (or halted) run queued again: replay stops before the steps it names (`retried`)
RUN_RETRIED = "run_retried"
RUN_FLAGGED = "run_flagged"
STEP_STARTED = "step_started"
STEP_COMPLETED = "step_completed"
STEP_FAILED = "step_failed"
STEP_IN_DOUBT = "step_in_doubt"
STEP_RESOLVED = "step_resolved"
TIMER_STARTED = "timer_started"
TIMER_FIRED = "timer_fired"
SIGNAL_WAITING = "signal_waiting"
SIGNAL_RECEIVED = "signal_received"
CHILD_SPAWNED = "child_spawned"
CHILD_REJECTED = "child_rejected"
CHILD_COMPLETED = "child_completed"
LOG = "log"
ANNOTATION = "annotation"
NOW = "now"
RANDOM = "random"

#: which ctx operation wrote an event kind (replay uses it to detect code that left its journal)
FAMILY: dict[str, str] = {
    STEP_STARTED: "step", STEP_COMPLETED: "step", STEP_FAILED: "step", STEP_IN_DOUBT: "step",
    STEP_RESOLVED: "step", NOW: "now", RANDOM: "random", TIMER_STARTED: "sleep",
    TIMER_FIRED: "sleep", SIGNAL_WAITING: "wait_for", SIGNAL_RECEIVED: "wait_for",
    CHILD_SPAWNED: "spawn", CHILD_REJECTED: "spawn", CHILD_COMPLETED: "join", LOG: "log",
    ANNOTATION: "annotate", RUN_FLAGGED: "flag",
}
#: kinds that open an operation and kinds that close one (for durations)
OPENS = frozenset({STEP_STARTED, TIMER_STARTED, SIGNAL_WAITING, CHILD_SPAWNED})
CLOSES = frozenset({STEP_COMPLETED, STEP_FAILED, TIMER_FIRED, SIGNAL_RECEIVED, CHILD_COMPLETED})
RUN_ENDS = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_HALTED, RUN_CANCELLED})

# -- step names -----------------------------------------------------------------------------------
MODEL_STEP = "model:"  # + the model's name
TOOL_STEP = "tool:"  # + the tool's name
GUARD_STEP = "guard:"  # + what the guards journal (approval:<tool>, ...)
APPROVAL_STEP = GUARD_STEP + "approval:"  # + the tool awaiting approval
EXEC_STEP = "sandbox.exec"
APPROVAL_SIGNAL = "approval:"  # + approval id: the signal a decision arrives as
#: key in a tool step's result marking it as the guards' answer (the tool did not run)
ANSWERED = "guard"

StepFamily = Literal["model", "tool", "exec", "guard", "step"]


def awaited_signals(events: Sequence[Event]) -> list[str]:
    """The signal names a journal says its run waits for now (a `wait_for` not answered yet),
    in the order it asked: what `tether signal` warns about and what a signal must name to
    wake the run (`ops.send_signal`)."""
    received = {e.key for e in events if e.kind == SIGNAL_RECEIVED}
    return [str(e.name) for e in events if e.kind == SIGNAL_WAITING and e.key not in received]


def model_step(model_name: str) -> str:
    return MODEL_STEP + model_name


def tool_step(tool_name: str) -> str:
    return TOOL_STEP + tool_name


def step_family(name: str | None) -> StepFamily:
    """What a step is, from its journaled name."""
    name = name or ""
    if name.startswith(MODEL_STEP):
        return "model"
    if name.startswith(TOOL_STEP):
        return "tool"
    if name == EXEC_STEP:
        return "exec"
    if name.startswith(GUARD_STEP):
        return "guard"
    return "step"


def step_subject(name: str | None) -> str:
    """The model or tool a step called (the name after its prefix), else the name itself."""
    name = name or ""
    for prefix in (MODEL_STEP, TOOL_STEP, GUARD_STEP):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


# -- payload readers ------------------------------------------------------------------------------
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)  # not frozen: a frozen init is a slow setattr per field
class ModelCallRecord:
    """A completed model call: who answered, what it cost, what it proposed."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    text: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    #: why the reply was refused and asked again with feedback (empty: it was accepted)
    rejected: tuple[str, ...] = ()
    repaired: bool = False  # accepted after a safe repair (fences, trailing commas, ...)
    #: every try when a retry or fallback wrapper made several (the last one answered)
    attempts: tuple[dict[str, Any], ...] = ()


def model_call(event: Event) -> ModelCallRecord | None:
    """The model call recorded by a `step_completed` event of a `model:` step."""
    if event.kind != STEP_COMPLETED or step_family(event.name) != "model":
        return None
    data = _dict(event.data)
    if "response" not in data and "usage" not in data:
        return None  # a plain step that happened to be named model:…
    usage = _dict(data.get("usage"))
    response = _dict(data.get("response"))
    cost = data.get("cost_usd")
    calls = response.get("tool_calls")  # read once per span by live tracing: no generators
    rejected = data.get("rejected")
    tried = response.get("attempts")
    return ModelCallRecord(
        str(data.get("model") or step_subject(event.name)),
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        float(cost) if isinstance(cost, int | float) else None,
        str(response.get("text") or ""),
        tuple([c if isinstance(c, dict) else {} for c in calls]) if calls else (),
        response.get("finish_reason"),
        tuple([str(r) for r in rejected]) if rejected else (),
        bool(data.get("repaired")),
        tuple([a for a in tried if isinstance(a, dict)]) if isinstance(tried, list) else (),
    )


@dataclass(slots=True)  # not frozen: a frozen init is a slow setattr per field
class ToolCallRecord:
    """A completed tool step: its outcome, and whether the guards answered it instead."""

    tool: str
    ok: bool
    output: Any = None
    error_type: str | None = None
    error_message: str = ""
    answered_by: str | None = None  # the guard that answered (policy, approval, honeypot, ...)


def tool_call(event: Event) -> ToolCallRecord | None:
    """The outcome recorded by a `step_completed` event of a `tool:` step."""
    if event.kind != STEP_COMPLETED or step_family(event.name) != "tool":
        return None
    data = _dict(event.data)
    if "ok" not in data:
        return None
    error = _dict(data.get("error"))
    answered = data.get(ANSWERED)
    return ToolCallRecord(
        tool=str(data.get("tool") or step_subject(event.name)),
        ok=bool(data.get("ok")),
        output=data.get("output"),
        error_type=error.get("type"),
        error_message=str(error.get("message") or ""),
        answered_by=str(answered) if answered else None,
    )


@dataclass(frozen=True)
class GuardDecision:
    """The policy's decision journaled in a step's `step_started` meta."""

    action: str
    rule: str | None = None
    reason: str = ""
    policy: str | None = None
    via: str | None = None
    short_circuit: str | None = None  # which guard answered the step in place of the tool
    extra: dict[str, Any] = field(default_factory=dict)


def step_meta(event: Event) -> dict[str, Any]:
    """The `meta` a `step_started` event carries (effect kind, tool metadata, decisions)."""
    if event.kind != STEP_STARTED:
        return {}
    return _dict(_dict(event.data).get("meta"))


def guard_decision(event: Event) -> GuardDecision | None:
    """The decision the guards journaled for a step, read from its `step_started` event."""
    meta = step_meta(event)
    policy = _dict(meta.get("policy"))
    if not policy:
        return None
    short = _dict(_dict(event.data).get("short_circuit"))
    return GuardDecision(
        action=str(policy.get("action") or ""),
        rule=policy.get("rule"),
        reason=str(policy.get("reason") or ""),
        policy=policy.get("policy"),
        via=policy.get("via"),
        short_circuit=short.get("guard") if short else None,
        extra={k: v for k, v in policy.items()
               if k not in ("action", "rule", "reason", "policy", "via")},
    )


def exec_result(event: Event) -> dict[str, Any] | None:
    """A sandbox run's result (exit code, output, files, manifest) from a completed
    `sandbox.exec` step or a code tool (`tool:python`, `tool:bash`) whose output is one."""
    if event.kind != STEP_COMPLETED:
        return None
    data = _dict(event.data)
    if event.name == EXEC_STEP and "exit_code" in data:
        return data
    if step_family(event.name) == "tool":
        output = _dict(data.get("output"))
        if "exit_code" in output:
            return output
    return None


@dataclass(frozen=True)
class RetryRecord:
    """A `run_retried` event: a new attempt of a failed (or halted) run. The events from
    `rerun_from_seq` up to this one belong to the failed attempt: replay ignores them, so those
    steps run again; every step journaled before them replays."""

    attempt: int  # 2 for the first retry
    previous_status: str
    previous_error: str | None
    rerun_from_seq: int | None  # None: nothing failed in a step; the agent's code runs again
    rerun_steps: tuple[str, ...] = ()  # "key name" of each step that executes again
    replayed_steps: int = 0


def retry_record(event: Event) -> RetryRecord | None:
    if event.kind != RUN_RETRIED:
        return None
    data = _dict(event.data)
    since = data.get("rerun_from_seq")
    return RetryRecord(
        attempt=int(data.get("attempt") or 2),
        previous_status=str(data.get("previous_status") or ""),
        previous_error=data.get("previous_error"),
        rerun_from_seq=int(since) if isinstance(since, int) else None,
        rerun_steps=tuple(str(s) for s in data.get("rerun_steps") or ()),
        replayed_steps=int(data.get("replayed_steps") or 0),
    )


@dataclass(frozen=True)
class HaltRecord:
    """A `run_halted` event: which guard stopped the run (budget, loop, ...) and why."""

    reason: str
    guard: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def halt_record(event: Event) -> HaltRecord | None:
    if event.kind != RUN_HALTED:
        return None
    data = _dict(event.data)
    details = _dict(data.get("details"))
    guard = details.get("guard")
    return HaltRecord(reason=str(data.get("reason") or ""),
                      guard=str(guard) if guard else None,
                      details={k: v for k, v in details.items() if k != "guard"})


#: the loop detector's signals (guards/loops.py `Intervention.kind`)
LOOP_SIGNALS = frozenset({"repeated_call", "semantic_loop", "repeated_error"})


@dataclass(frozen=True)
class InterventionRecord:
    """A loop intervention the guards applied before a model call (journaled as a `log` event
    carrying the intervention's fields): what was noticed and what was done about it."""

    kind: str  # one of LOOP_SIGNALS
    message: str
    evidence: str = ""
    trim_history_to: int | None = None
    temperature_delta: float = 0.0


def loop_intervention(event: Event) -> InterventionRecord | None:
    if event.kind != LOG:
        return None
    data = _dict(event.data)
    if data.get("kind") not in LOOP_SIGNALS or "evidence" not in data:
        return None
    trim = data.get("trim_history_to")
    delta = data.get("temperature_delta")
    return InterventionRecord(
        kind=str(data["kind"]), message=str(data.get("message") or ""),
        evidence=str(data.get("evidence") or ""),
        trim_history_to=int(trim) if isinstance(trim, int) else None,
        temperature_delta=float(delta) if isinstance(delta, int | float) else 0.0,
    )


def usage_of(events: list[Event]) -> tuple[int, int, float | None]:
    """Tokens in, tokens out and cost (None when no call reported one) over a journal."""
    tin = tout = 0
    cost: float | None = None
    for e in events:
        call = model_call(e)
        if call is None:
            continue
        tin += call.input_tokens
        tout += call.output_tokens
        if call.cost_usd is not None:
            cost = (cost or 0.0) + call.cost_usd
    return tin, tout, cost
