"""Retrying a failed run: a new attempt from its journal, the failing step(s) executed again.

The journal is append-only, so a retry deletes nothing. It appends a `run_retried` event naming
the first event of the failed attempt's failure (`rerun_from_seq`); replay (`replayable`) then
ignores the keyed events from there up to that marker. Every step journaled before them is
answered from the journal as usual — nothing that worked runs twice — and the steps after them
run live again, under the same journal keys. A step that executes again gets a new idempotency
key (`run_id:seq` of its new start): a step that failed after its effect took place (a lost
response, a timeout) may take effect twice unless it is idempotent, which is why the plan warns
for every step that is not. Keeping the first attempt's key would make a deduplicating service
answer the retry with the stored failure.

Which steps run again: the failure at the end of the journal. Walking back from the run's end,
a step that failed (`step_failed`, a tool result that is a failure, a model reply that was
rejected) belongs to it, and so do the steps cancelled with it (siblings in a `gather`) and the
log lines, annotations, clock and random values written after it; the walk stops at the first
step that worked. A failure the agent handled and moved past is therefore never re-run: what
the journal holds after it would no longer match. When the walk finds no failed step (the
agent's own code raised after its last step, or a budget halted it), every step replays and
only the code after them runs again — useful once the code, or the budget, was fixed.

Retried: `failed` runs, and `halted` ones. A halt is decided again on the new attempt: it halts
again at the same point unless what halted it changed — a budget raised for the retry (`budget=`,
merged into the run's `options["budget"]`) or in the deployed guards. What was spent stays spent
(the journal of the failed attempt still counts), and a wall-time limit counts from the run's
creation, so raise it too.
Not retried: `cancelled` (someone stopped it on purpose), `succeeded`, live runs, and child runs
(their parent already holds their outcome in its own journal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.store import Event, RunRecord
from tether.store import vocabulary as v

from .errors import InvalidInput, TetherError
from .executors.base import OUT_OF_MEMORY_TYPES
from .executors.resources import Resources

RETRYABLE = ("failed", "halted")
#: events written after a failure that depend on it, and so are superseded with it
_BOOKKEEPING = frozenset({v.LOG, v.ANNOTATION, v.NOW, v.RANDOM, v.RUN_FLAGGED, v.STEP_IN_DOUBT,
                          v.STEP_RESOLVED})


class RunNotRetryable(TetherError):
    """`retry` was asked for a run that is not failed or halted, or that cannot be retried."""


@dataclass(frozen=True)
class RerunStep:
    key: str
    name: str
    why: str  # the failure recorded for it ("ConnectionError: ...", "Cancelled: ...")
    idempotent: bool = False  # declared safe to repeat (journaled with its start)
    #: it returned (its effect took place) and only its result could not be recorded
    ran: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "why": self.why,
                "idempotent": self.idempotent, "ran": self.ran}


@dataclass(frozen=True)
class RetryPlan:
    """What a retry replays and what it executes again, for the explanation and the journal."""

    run_id: str
    attempt: int
    previous_status: str
    previous_error: str | None
    last_seq: int  # the journal this plan was made from ends here (checked when it is queued)
    rerun_from_seq: int | None
    rerun: tuple[RerunStep, ...] = ()
    replayed: tuple[tuple[str, str], ...] = field(default=())  # (key, name) of each step
    #: limits replacing the run's own (`options["budget"]`, merged): for a run that halted
    budget: dict[str, Any] | None = None

    def explain(self) -> list[str]:
        """The plan in words, one line each (what `tether retry` prints)."""
        why = self.previous_error or "no error recorded"
        lines = [f"retrying run {self.run_id}: attempt {self.attempt} (it {self.previous_status}:"
                 f" {why})"]
        if self.replayed:
            names = ", ".join(f"{k} {n}" for k, n in self.replayed)
            lines.append(f"replayed from the journal, not executed again: "
                         f"{len(self.replayed)} step(s): {names}")
        else:
            lines.append("replayed from the journal: nothing (no step completed before the "
                         "failure)")
        if self.budget:
            lines.append("budget for the new attempt: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.budget.items())))
        if self.rerun:
            for step in self.rerun:
                lines.append(f"executes again: step {step.key} {step.name} (was {step.why})")
                if step.ran:
                    lines.append(f"  warning: {step.name} ran and its effect took place; only "
                                 "its result could not be recorded: it takes place again")
                elif not step.idempotent:
                    lines.append(f"  warning: {step.name} is not declared idempotent: if its "
                                 "effect took place before it failed, it takes place again")
            lines.append("then the agent continues live after them")
        elif self.previous_status == "halted":
            lines.append("executes again: nothing failed; the agent continues live from where "
                         "it halted, and halts again there unless its limit was raised")
        else:
            lines.append("executes again: no step failed; the agent's code after its last step "
                         "runs again (the failure came from the code itself)")
        return lines

    def event_data(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt, "previous_status": self.previous_status,
            "previous_error": self.previous_error, "rerun_from_seq": self.rerun_from_seq,
            "rerun_steps": [f"{s.key} {s.name}" for s in self.rerun],
            "rerun": [s.to_json() for s in self.rerun],
            "replayed_steps": len(self.replayed),
            **({"budget": self.budget} if self.budget else {}),
        }


def replayable(events: Sequence[Event]) -> list[Event]:
    """The journal as replay must see it: keyed events of failed attempts that a retry
    superseded are left out (they stay in the store and in every timeline)."""
    out: list[Event] = []
    for event in events:
        retry = v.retry_record(event)
        if retry is not None and retry.rerun_from_seq is not None:
            since = retry.rerun_from_seq
            out = [e for e in out if e.key is None or e.seq < since]
        out.append(event)
    return out


def _failure(event: Event) -> str | None:
    """Why this event records a failed step, or None when it does not."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.kind == v.STEP_FAILED:
        return f"{data.get('type')}: {data.get('message')}"
    call = v.tool_call(event)
    if call is not None and not call.ok and call.answered_by is None:
        return f"failed tool result {call.error_type}: {call.error_message}"
    model = v.model_call(event)
    if model is not None and model.rejected:
        return "rejected model reply: " + "; ".join(model.rejected)
    return None


def plan_retry(run: RunRecord, events: Sequence[Event], *,
               budget: dict[str, Any] | None = None) -> RetryPlan:
    """What retrying `run` would replay and execute again (raises `RunNotRetryable`).
    `budget`: limits to raise for the new attempt (merged into the run's own)."""
    if run.status not in RETRYABLE:
        hint = {"cancelled": "it was cancelled on purpose; start a new run instead",
                "succeeded": "nothing to retry; start a new run to do it again"}.get(
            run.status, "only a failed or halted run can be retried; wait for it to end")
        raise RunNotRetryable(f"run {run.id!r} has status {run.status!r}: {hint}")
    if run.parent_id:
        raise RunNotRetryable(
            f"run {run.id!r} is a child of run {run.parent_id!r}, whose journal already holds "
            "its outcome: retrying it alone would change nothing the parent sees")
    journal = replayable(events)
    attempt = 1 + sum(1 for e in events if e.kind == v.RUN_RETRIED)
    keyed = [e for e in journal if e.key is not None]
    failed: dict[str, str] = {}
    first_of: dict[str, int] = {}
    for e in keyed:
        first_of.setdefault(e.key or "", e.seq)
    for e in reversed(keyed):
        why = _failure(e)
        if why is not None:
            failed.setdefault(e.key or "", why)
        elif not (e.kind in _BOOKKEEPING or e.key in failed):  # a step that worked
            break
    since = min((first_of[k] for k in failed), default=None)
    steps = {(e.key or "", e.name or "") for e in keyed if e.kind == v.STEP_STARTED
             or e.kind in (v.STEP_COMPLETED, v.STEP_FAILED)}
    replayed = sorted(((k, n) for k, n in steps if since is None or first_of[k] < since),
                      key=lambda kn: first_of[kn[0]])
    names = {e.key: e.name for e in keyed}
    safe = {e.key for e in keyed if e.kind == v.STEP_STARTED and isinstance(e.data, dict)
            and e.data.get("idempotent")}
    ran = {e.key for e in keyed if e.kind == v.STEP_FAILED and isinstance(e.data, dict)
           and e.data.get("ran")}
    rerun = tuple(RerunStep(k, names.get(k) or "", failed[k], k in safe, k in ran)
                  for k in sorted(failed, key=lambda k: first_of[k]))
    last_seq = events[-1].seq if events else 0
    return RetryPlan(run.id, attempt + 1, run.status, run.error or run.reason, last_seq, since,
                     rerun, tuple(replayed), _limits(budget))


def _limits(budget: dict[str, Any] | None) -> dict[str, Any] | None:
    """The shape of a budget (names are the guards' to check: `BudgetLimits.from_json`)."""
    if budget is None:
        return None
    if not isinstance(budget, dict) or not budget or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            and v >= 0 for k, v in budget.items()):
        raise InvalidInput(f"a retry's budget must map limit names to non-negative numbers, "
                           f"e.g. {{\"steps\": 20}}; got {budget!r}")
    return dict(budget)


# -- retrying a step within its run ------------------------------------------------------------
#: the failures of the machinery around a step, retried when a policy names no error types
EXECUTOR_FAILURES = frozenset({"StepLost"}) | OUT_OF_MEMORY_TYPES


@dataclass(frozen=True)
class StepRetry:
    """How a failed step runs again inside the same run attempt, under the same journal key
    (each attempt journals its start, with its resources, and its failure): `ctx.step(...,
    retry=StepRetry(on_oom=grow_memory(2.0)))`. Attempts are counted from the journal, so a
    worker that resumes the run continues the count and asks for what the last attempt would
    have been followed by.

    `on`: the error types (as journaled, e.g. "ConnectionError") retried; by default the
    failures of the machinery around the step: its Ray task lost, or killed for lack of memory.
    A lost task is retried only for an idempotent step; any other step is in doubt and waits
    for a human, whatever the policy. `on_oom`: the next attempt's resources after an
    out-of-memory failure (`grow_memory`)."""

    max_attempts: int = 3  # in all, the first included
    on: frozenset[str] = EXECUTOR_FAILURES
    on_oom: Callable[[Resources | None], Resources] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidInput(f"StepRetry(max_attempts={self.max_attempts!r}): give the "
                               "number of attempts in all, >= 1 (1: no retry)")
        if isinstance(self.on, str):
            raise InvalidInput(f"StepRetry(on={self.on!r}): give a set of error type names, "
                               f"e.g. on=frozenset({{{self.on!r}}})")
        object.__setattr__(self, "on", frozenset(self.on))

    def check(self, step: str, resources: Resources | None) -> None:
        """Refuse, before the first attempt, a policy its step cannot follow."""
        if self.on_oom is not None and (resources is None or resources.memory is None):
            raise InvalidInput(
                f"step {step!r}: retry=StepRetry(on_oom=...) changes the step's memory request "
                "after an out-of-memory failure, but the step declares none: add "
                "resources=Resources(memory=...) (bytes, e.g. 1 << 30)")

    def retries(self, error_type: str, attempts_so_far: int) -> bool:
        """Whether a step whose attempt `attempts_so_far` failed with `error_type` runs again."""
        return error_type in self.on and attempts_so_far < self.max_attempts

    def next_resources(self, resources: Resources | None, error_type: str) -> Resources | None:
        if self.on_oom is not None and error_type in OUT_OF_MEMORY_TYPES:
            return self.on_oom(resources)
        return resources


#: the policy of a step that names none: an idempotent step whose Ray task was lost runs again
#: (as it would after its worker crashed), twice at most; nothing else is retried
DEFAULT_STEP_RETRY = StepRetry(max_attempts=3, on=frozenset({"StepLost"}))


def grow_memory(factor: float = 2.0, *, limit: int | None = None
                ) -> Callable[[Resources | None], Resources]:
    """An `on_oom` that asks for `factor` times the memory of the attempt that ran out (up to
    `limit` bytes). The step must declare its first request: `resources=Resources(memory=...)`."""
    if not isinstance(factor, int | float) or factor <= 1:
        raise InvalidInput(f"grow_memory({factor!r}): the factor must be a number > 1")

    def grow(resources: Resources | None) -> Resources:
        if resources is None or resources.memory is None:
            raise InvalidInput("grow_memory needs the step's first memory request: "
                               "ctx.step(..., resources=Resources(memory=2 << 30), ...)")
        memory = math.ceil(resources.memory * factor)
        return resources.with_memory(memory if limit is None else min(memory, limit))

    return grow
