"""What the pages show, read from the journal through tether.observe: the trace tree is the
spans `tether trace` draws (`run_spans`), the sandbox outputs are the journal's exec results,
and a tenant's budgets are the deployment's guards' own limits. Nothing here keeps a second
record of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.observe import SpanRecord, run_spans
from tether.store import vocabulary as v

from ..api.state import ServerState


@dataclass
class TraceNode:
    span: SpanRecord
    depth: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    decision: str
    children: int = 0


def trace_tree(state: ServerState, run_id: str, tenant: str) -> list[TraceNode]:
    """The run's spans (and its children's) depth-first, each with its tokens, cost and the
    guards' decision, ordered by start time among siblings.

    Only the spans of runs of `tenant`: a run may spawn a child into another tenant, and the
    store's tree of runs crosses tenants where the API (a run's `children`) does not."""
    own = {run_id, *(r.id for r in state.tether.store.descendants(run_id) if r.tenant == tenant)}
    spans = [s for s in run_spans(state.tether, run_id) if s.run_id in own]
    ids = {s.span_id for s in spans}
    below: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        below.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    out: list[TraceNode] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(below.get(parent, []), key=lambda s: (s.start, s.start_seq)):
            a = s.attributes
            cost = a.get("tether.cost.usd")
            action = str(a.get("tether.guard.action") or "")
            rule = str(a.get("tether.guard.rule") or "")
            out.append(TraceNode(
                s, depth, _int(a.get("gen_ai.usage.input_tokens")),
                _int(a.get("gen_ai.usage.output_tokens")),
                float(cost) if isinstance(cost, int | float) else None,
                f"{action} {rule}".strip(), len(below.get(s.span_id, []))))
            walk(s.span_id, depth + 1)

    walk(None, 0)
    return out


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


@dataclass
class SandboxOutput:
    seq: int
    step: str
    exit_code: Any
    duration_ms: float
    stdout: str
    stderr: str
    files: list[str] = field(default_factory=list)


def sandbox_outputs(state: ServerState, run_id: str) -> list[SandboxOutput]:
    """Every sandbox execution the run journaled, with what it printed and wrote."""
    out: list[SandboxOutput] = []
    for e in state.tether.store.load_events(run_id):
        res = v.exec_result(e)
        if res is None:
            continue
        files = res.get("files") or {}
        out.append(SandboxOutput(
            e.seq, str(e.name or ""), res.get("exit_code"), float(res.get("duration_ms") or 0),
            str(res.get("stdout") or ""), str(res.get("stderr") or ""),
            [*files.get("added", []), *files.get("modified", [])]))
    return out


@dataclass
class BudgetLine:
    metric: str
    used: float
    limit: float | None

    @property
    def share(self) -> float | None:
        return None if not self.limit else min(1.0, self.used / self.limit)


def budget_lines(state: ServerState, tenant: str, counters: dict[str, float]) -> list[BudgetLine]:
    """Today's usage counters next to the tenant's daily limits from the deployment's guards
    (the lowest limit where several guards set one; None: unlimited)."""
    from tether.guards.budget import USAGE_METRICS

    limits: dict[str, float] = {}
    for g in state.loaded_guards():
        config = getattr(g, "config", None)
        found = getattr(config, "tenant_limits", {}).get(tenant)
        for metric in USAGE_METRICS:
            limit = getattr(found, metric, None) if found is not None else None
            if limit is not None:
                limits[metric] = min(limits.get(metric, limit), limit)
    return [BudgetLine(m, float(counters.get(m, 0.0)), limits.get(m)) for m in USAGE_METRICS]


def for_viewer(detail: Any, sandbox: list[SandboxOutput]) -> tuple[Any, list[SandboxOutput]]:
    """A run's page as a viewer key may read it: PII and secrets masked in its input, result,
    error, timeline details and sandbox output (`tether.guards.pii.Scrubber`, one scrubber so a
    value keeps its placeholder across the page).

    Why: the journal keeps what tools really returned and raised (the guards mask only what the
    model reads), and a viewer is granted no more than the model: an operator (who can cancel,
    resolve and retry the run) reads it as journaled, as `tether show` does."""
    from tether.guards.pii import Scrubber

    scrub = Scrubber()
    run = detail.run
    run = run.model_copy(update={
        "input": scrub.value(run.input), "result": scrub.value(run.result),
        "error": scrub.text(run.error) if run.error else run.error,
        "reason": scrub.text(run.reason) if run.reason else run.reason})
    timeline = [r.model_copy(update={"detail": scrub.text(r.detail)}) for r in detail.timeline]
    outputs = [SandboxOutput(o.seq, o.step, o.exit_code, o.duration_ms, scrub.text(o.stdout),
                             scrub.text(o.stderr), o.files) for o in sandbox]
    return detail.model_copy(update={"run": run, "timeline": timeline}), outputs


def approvals_for_viewer(pending: list[Any]) -> list[Any]:
    """Pending approvals as a key below the approver role may read them: arguments and reason
    masked. An approver sees them as the tool will receive them, real values included: that
    is what they sign (the action digest), and approving `[EMAIL_1]` would hide who is paid; a
    viewer is granted no more than the model."""
    from tether.guards.pii import Scrubber

    scrub = Scrubber()
    return [a.model_copy(update={"args": scrub.value(a.args), "reason": scrub.text(a.reason)})
            for a in pending]
