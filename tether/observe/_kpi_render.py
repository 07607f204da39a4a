"""The one terminal renderer of the KPIs (`tether stats`): a table per agent, a table per tool.

Plain data stays in `kpis.py` (`KpiReport.to_json` is what `--json` prints); here only how it
reads on a terminal: "n/a" where a figure has no meaning (no action, no plan, no known context
window), never a zero that would look like a measurement.
"""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from tether.observe.kpis import AgentKpis, KpiReport, ToolKpis

NA = "[dim]n/a[/]"


#: narrower than this, the agents' table is turned round (one column per agent), since its
#: eleven figures per agent no longer fit on a line
WIDE = 112


def kpi_tables(report: KpiReport, width: int = WIDE) -> list[Table]:
    """The agents' table, then the tools' (none when no tool was called), for a terminal
    `width` characters wide."""
    tables = [_agents(report.agents) if width >= WIDE else _agents_turned(report.agents)]
    if report.tools:
        tables.append(_tools(report.tools))
    return tables


def _agents(agents: list[AgentKpis]) -> Table:
    table = Table(title="agents", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("agent", overflow="fold", min_width=8, ratio=1)
    for name in ("runs", "ok", "tok/task", "$/task", "thinking", "tools", "think:act", "plan",
                 "ctx max", "loops", "halts"):
        table.add_column(name, justify="right", overflow="fold")
    short = _short_names([a.agent for a in agents])
    for a in agents:
        ok = a.statuses.get("succeeded", 0)
        table.add_row(
            escape(short[a.agent]), str(a.runs), f"{ok / a.runs:.0%}" if a.runs else NA,
            f"{a.tokens_per_task:,.0f}",
            NA if a.cost_per_task is None else f"${a.cost_per_task:.4f}",
            _seconds(a.thinking_s) + _share(a.thinking_share), _seconds(a.tool_s),
            _ratio(a.thought_to_action), _pct(a.plan_fidelity),
            _pct(a.context_pressure_max) if a.context_pressure_max is not None else NA,
            str(a.loop_interventions), _halts(a))
    table.caption = " ".join((
        "ok: runs that succeeded; tok/task, $/task: tokens and cost per run; thinking: time in "
        "model calls (its share of thinking + tools); tools: time in tools and sandbox execs; "
        "think:act: model calls per tool call; plan: tool calls run / planned; ctx max: the "
        "largest prompt / the model's context window; loops: loop interventions.",
        _unknown_windows(agents))).strip()
    table.caption_justify = "left"
    return table


def _agents_turned(agents: list[AgentKpis]) -> Table:
    table = Table(title="agents", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    short = _short_names([a.agent for a in agents])
    for a in agents:
        table.add_column(escape(short[a.agent]), justify="right", overflow="fold")
    rows: dict[str, list[str]] = {name: [] for name in _ROWS}
    for a in agents:
        ok = a.statuses.get("succeeded", 0)
        for name, text in zip(_ROWS, (
                str(a.runs), f"{ok / a.runs:.0%}" if a.runs else NA, f"{a.tokens_per_task:,.0f}",
                NA if a.cost_per_task is None else f"${a.cost_per_task:.4f}",
                _seconds(a.thinking_s) + _share(a.thinking_share), _seconds(a.tool_s),
                _ratio(a.thought_to_action), _pct(a.plan_fidelity),
                _pct(a.context_pressure_max), str(a.loop_interventions), _halts(a)),
                strict=True):
            rows[name].append(text)
    for name, cells in rows.items():
        table.add_row(name, *cells)
    table.caption = _unknown_windows(agents)
    return table


def _unknown_windows(agents: list[AgentKpis]) -> str:
    unknown = sorted({m for a in agents for m in a.unknown_windows})
    if not unknown:
        return ""
    return (f"Context window unknown for {', '.join(unknown)}: give it with --context-window "
            "MODEL=TOKENS")


_ROWS = ("runs", "succeeded", "tokens per task", "cost per task", "thinking", "tools",
         "model calls per tool call", "plan fidelity", "context window, max", "loop interventions",
         "halts")


def _short_names(agents: list[str]) -> dict[str, str]:
    """An agent's function name (`pkg.mod:shop` -> `shop`) where no other agent shares it."""
    tail = {a: a.rsplit(":", 1)[-1] for a in agents}
    clash = {t for t in tail.values() if list(tail.values()).count(t) > 1}
    return {a: a if t in clash else t for a, t in tail.items()}


def _tools(tools: list[ToolKpis]) -> Table:
    table = Table(title="tools", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("tool", "calls", "ok", "errors", "refused", "P(success)", "mean", "max"):
        table.add_column(name, justify="left" if name == "tool" else "right", overflow="fold")
    table.add_column("errors and refusals", overflow="fold")
    for t in tools:
        notes = [f"{n} {kind}" for kind, n in t.error_types.items()]
        notes += [f"{n} refused by {guard}" for guard, n in t.refused_by.items()]
        table.add_row(escape(t.tool), str(t.calls), str(t.ok), str(t.errors), str(t.refused),
                      _pct(t.p_success), _seconds(t.mean_s), _seconds(t.max_s),
                      escape(", ".join(notes)))
    table.caption = "P(success): ok / (ok + errors); refused calls did not run"
    table.caption_justify = "left"
    return table


def _halts(a: AgentKpis) -> str:
    parts = [f"{n} {what}" for what, n in (("budget", a.budget_halts), ("loop", a.loop_halts))
             if n]
    return ", ".join(parts) or "0"


def _seconds(s: float | None) -> str:
    if s is None:
        return NA
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def _share(share: float | None) -> str:
    return "" if share is None else f" ({share:.0%})"


def _pct(value: float | None) -> str:
    return NA if value is None else f"{value:.1%}"


def _ratio(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}"
