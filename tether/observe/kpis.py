"""Agent KPIs computed from the journal: per agent and per tool, for `tether stats` and scripts.

Every figure is a function of the runs' journals (`_kpi_facts`), so it is exact after the fact,
the same on every machine, and counts a resumed run's steps once. The definitions (docs/
observability.md, "Metrics and agent KPIs", says the same to users):

* **tokens / cost per task (TPT)**: a run is one task of its agent; its own model calls only (a
  child run is a task of the child's agent). Cost is None when no call had a price.
* **thinking vs tool latency**: seconds spent in model steps vs in tool steps and sandbox execs
  (each from its last start to its end), and the thinking share of the two.
* **P(success) per tool**: calls that ran and returned ok / calls that ran (ok + error). Calls
  the guards answered (a policy denial, a denied approval, an open breaker, a honeypot) did not
  run: they are counted as `refused`, outside P(success). A sandbox exec succeeds with exit 0.
* **plan fidelity**: tool calls that ran / tool calls planned, over runs whose strategy journaled
  a plan (`ctx.annotate("plan", {"steps": [...]})`); None ("n/a") otherwise. No built-in strategy
  journals one yet: ReAct decides one step at a time and has no plan to be faithful to.
* **thought-to-action ratio**: model calls / actions (tool calls of any outcome + sandbox execs).
* **context-window pressure**: each model call's prompt tokens / the model's context window
  (`_kpi_context`), max and mean; None when no called model has a known window.
* **loop interventions** (journaled by the guards before the next model call) and **budget /
  loop halts** (the guard named in a `run_halted` event).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tether.observe._kpi_context import context_window
from tether.observe._kpi_facts import RunFacts, ToolFact, run_facts

if TYPE_CHECKING:
    from tether.store import Event, Store

#: tether stats' default: the newest runs it reads (a larger store is read with --limit)
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class AgentKpis:
    """The KPIs of one agent over the runs selected. Field names are a stable JSON contract
    (`tether stats --json`): fields may be added, never renamed or removed."""

    agent: str
    runs: int
    statuses: dict[str, int]  # succeeded / failed / halted / cancelled / unfinished -> runs
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    tokens_per_task: float
    cost_per_task: float | None
    model_calls: int
    model_errors: int
    tool_calls: int  # tool steps of every outcome, sandbox execs included
    thinking_s: float
    tool_s: float
    thinking_share: float | None  # thinking_s / (thinking_s + tool_s)
    thought_to_action: float | None
    plan_fidelity: float | None
    planned_steps: int
    context_pressure_max: float | None
    context_pressure_mean: float | None
    unknown_windows: list[str]  # models called whose context window is not known
    loop_interventions: int
    budget_halts: int
    loop_halts: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ToolKpis:
    """One tool (or `sandbox.exec`) over the runs selected; a stable JSON contract too."""

    tool: str
    calls: int
    ok: int
    errors: int
    refused: int  # answered by the guards: the tool did not run
    p_success: float | None  # ok / (ok + errors); None when it never ran
    mean_s: float | None
    max_s: float | None
    error_types: dict[str, int]
    refused_by: dict[str, int]  # guard -> calls it answered

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KpiReport:
    """`tether stats`: the KPIs per agent and per tool, and what was selected."""

    agents: list[AgentKpis]
    tools: list[ToolKpis]
    runs: int
    tenant: str | None = None
    since: float | None = None  # unix time
    agent: str | None = None
    truncated: bool = False  # the newest `limit` runs were read; older ones may match too
    limit: int = DEFAULT_LIMIT

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "filters": {"tenant": self.tenant, "since": _iso(self.since), "agent": self.agent,
                        "limit": self.limit},
            "truncated": self.truncated,
            "agents": [a.to_json() for a in self.agents],
            "tools": [t.to_json() for t in self.tools],
        }


def run_kpis(events: list[Event], *,
             context_windows: Mapping[str, int] | None = None) -> AgentKpis:
    """The KPIs of one run (its journal, in seq order)."""
    facts = run_facts(events)
    return agent_kpis(facts.agent, [facts], context_windows)


def kpi_report(facts: Iterable[RunFacts], *, context_windows: Mapping[str, int] | None = None,
               **selection: Any) -> KpiReport:
    """Aggregate run facts per agent and per tool (`selection`: KpiReport's filter fields)."""
    runs = list(facts)
    by_agent: dict[str, list[RunFacts]] = {}
    by_tool: dict[str, list[ToolFact]] = {}
    for f in runs:
        by_agent.setdefault(f.agent, []).append(f)
        for t in f.tools:
            by_tool.setdefault(t.tool, []).append(t)
    return KpiReport(
        agents=[agent_kpis(a, fs, context_windows) for a, fs in sorted(by_agent.items())],
        tools=[tool_kpis(name, ts) for name, ts in sorted(by_tool.items())],
        runs=len(runs), **selection)


def collect_kpis(store: Store, *, tenant: str | None = None, since: float | None = None,
                 agent: str | None = None, limit: int = DEFAULT_LIMIT,
                 context_windows: Mapping[str, int] | None = None) -> KpiReport:
    """The KPIs of the runs in `store` created at or after `since` (unix time), newest `limit`
    first, optionally of one tenant and one agent."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    records = store.list_runs(tenant=tenant, limit=limit + 1)  # one more: are there others?
    truncated = len(records) > limit and (since is None or records[limit].created_at >= since)
    records = records[:limit]
    selected = [r for r in records if (since is None or r.created_at >= since)
                and (agent is None or r.agent == agent)]
    facts = [run_facts(store.load_events(r.id), r.id) for r in selected]
    return kpi_report(facts, context_windows=context_windows, tenant=tenant, since=since,
                      agent=agent, truncated=truncated, limit=limit)


def agent_kpis(agent: str, runs: list[RunFacts],
               context_windows: Mapping[str, int] | None = None) -> AgentKpis:
    models = [m for f in runs for m in f.models]
    tools = [t for f in runs for t in f.tools]
    statuses: dict[str, int] = {}
    for f in runs:
        key = f.status or "unfinished"
        statuses[key] = statuses.get(key, 0) + 1
    tokens_in = sum(m.input_tokens for m in models)
    tokens_out = sum(m.output_tokens for m in models)
    priced = [m.cost_usd for m in models if m.cost_usd is not None]
    cost = sum(priced) if priced else None
    thinking = math.fsum(m.duration_s or 0.0 for m in models)
    acting = math.fsum(t.duration_s or 0.0 for t in tools)
    planned = [f for f in runs if f.planned_steps]
    planned_steps = sum(f.planned_steps or 0 for f in planned)
    ran_as_planned = sum(1 for f in planned for t in f.tools if t.outcome != "refused")
    pressures: list[float] = []
    unknown: set[str] = set()
    for m in models:
        window = context_window(m.model, context_windows)
        if window:
            pressures.append(m.input_tokens / window)
        elif m.error_type is None:
            unknown.add(m.model)
    halts = [h for f in runs for h in f.halts]
    n = len(runs)
    return AgentKpis(
        agent=agent, runs=n, statuses=dict(sorted(statuses.items())),
        tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=_round(cost),
        tokens_per_task=round((tokens_in + tokens_out) / n, 2) if n else 0.0,
        cost_per_task=_round(cost / n) if cost is not None and n else None,
        model_calls=len(models), model_errors=sum(1 for m in models if m.error_type),
        tool_calls=len(tools), thinking_s=round(thinking, 6), tool_s=round(acting, 6),
        thinking_share=_ratio(thinking, thinking + acting),
        thought_to_action=_ratio(len(models), len(tools)),
        plan_fidelity=_ratio(ran_as_planned, planned_steps), planned_steps=planned_steps,
        context_pressure_max=round(max(pressures), 4) if pressures else None,
        context_pressure_mean=round(sum(pressures) / len(pressures), 4) if pressures else None,
        unknown_windows=sorted(unknown),
        loop_interventions=sum(f.loop_interventions for f in runs),
        budget_halts=halts.count("budget"), loop_halts=halts.count("loop"),
    )


def tool_kpis(tool: str, calls: list[ToolFact]) -> ToolKpis:
    ok = sum(1 for c in calls if c.outcome == "ok")
    errors = sum(1 for c in calls if c.outcome == "error")
    timed = [c.duration_s for c in calls if c.duration_s is not None and c.outcome != "refused"]
    error_types: dict[str, int] = {}
    refused_by: dict[str, int] = {}
    for c in calls:
        if c.outcome == "error":
            kind = c.error_type or "error"
            error_types[kind] = error_types.get(kind, 0) + 1
        elif c.outcome == "refused":
            guard = c.answered_by or "guards"
            refused_by[guard] = refused_by.get(guard, 0) + 1
    return ToolKpis(
        tool=tool, calls=len(calls), ok=ok, errors=errors, refused=len(calls) - ok - errors,
        p_success=_ratio(ok, ok + errors),
        mean_s=round(sum(timed) / len(timed), 6) if timed else None,
        max_s=round(max(timed), 6) if timed else None,
        error_types=dict(sorted(error_types.items())), refused_by=dict(sorted(refused_by.items())))


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 8)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SinceError(ValueError):
    """A `--since` value that is neither a duration nor a date."""


def parse_since(text: str, now: float, flag: str = "--since") -> float:
    """`--since` (or another `flag` that names a moment, e.g. `tether prune --before`): a
    duration back from `now` (`90s`, `15m`, `1h`, `7d`, `2w`) or an ISO date or time
    (`2026-12-01`, `2026-12-01T08:00`, `2026-12-01T08:00+01:00`; UTC when no zone)."""
    match = _AGO.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SinceError(
            f"{flag} {text!r} is neither a duration nor a date: give e.g. 1h, 30m, 7d, "
            "2026-12-01 or 2026-12-01T08:00 (UTC unless a zone is given)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


__all__ = ["DEFAULT_LIMIT", "AgentKpis", "KpiReport", "SinceError", "ToolKpis", "agent_kpis",
           "collect_kpis", "kpi_report", "parse_since", "run_kpis", "tool_kpis"]
