"""The one terminal renderer of the KPIs (`tether stats`): a table per agent, a table per tool.

Plain data stays in `kpis.py` (`KpiReport.to_json` is what `--json` prints); here only how it
reads on a terminal: "n/a" where a figure has no meaning (no action, no plan, no known context
window), never a zero that would look like a measurement.

A figure, a name or a header is never cut in two to fit the terminal (`P(succe` / `ss)`,
`refuse` / `d`): each view is drawn in the first layout whose words all fit (`_fits`), from
the widest to a block of lines per agent or tool, which wraps only at spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from tether.observe.kpis import AgentKpis, KpiReport, ToolKpis

NA = "[dim]n/a[/]"


#: narrower than this, the agents' table is turned round (one column per agent), since its
#: eleven figures per agent no longer fit on a line
WIDE = 112

_COLUMNS = ("runs", "ok", "tok/task", "$/task", "thinking", "tools", "think:act", "plan",
            "ctx max", "loops", "halts")
_ROWS = ("runs", "succeeded", "tokens per task", "cost per task", "thinking", "tools",
         "model calls per tool call", "plan fidelity", "context window, max", "loop interventions",
         "halts")
_TOOL_COLUMNS = ("calls", "ok", "errors", "refused", "P(success)", "mean", "max")
_TOOLS_CAPTION = "P(success): ok / (ok + errors); refused calls did not run"


def kpi_tables(report: KpiReport, width: int = WIDE) -> list[RenderableType]:
    """The agents' view, then the tools' (none when no tool was called), for a terminal
    `width` characters wide: each the first of its tables that fits it, else its blocks."""
    agents = [_agents(report.agents)] if width >= WIDE else []
    agents.append(_agents_turned(report.agents))
    shown: list[RenderableType] = [_first_fitting(agents, width)
                                   or _agent_blocks(report.agents, width)]
    if report.tools:
        tools = [_tools(report.tools, notes=True), _tools(report.tools, notes=False)]
        shown.append(_first_fitting(tools, width) or _tool_blocks(report.tools, width))
    return shown


def _first_fitting(tables: list[Table], width: int) -> Table | None:
    return next((t for t in tables if _fits(t, width)), None)


def _fits(table: Table, width: int) -> bool:
    """Whether `table` drawn `width` characters wide shows every word of its headers and cells
    whole: rich folds (or cuts with an ellipsis) a cell narrower than its longest word."""
    from collections import Counter
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(table)
    words = Counter(word for column in table.columns
                    for cell in [column.header, *column.cells]
                    for word in Text.from_markup(str(cell)).plain.split())
    return not words - Counter(out.getvalue().split())


def _agent_cells(a: AgentKpis) -> list[str]:
    """An agent's figures as markup, in the order of `_COLUMNS` and `_ROWS`."""
    ok = a.statuses.get("succeeded", 0)
    return [str(a.runs), f"{ok / a.runs:.0%}" if a.runs else NA, f"{a.tokens_per_task:,.0f}",
            NA if a.cost_per_task is None else f"${a.cost_per_task:.4f}",
            _seconds(a.thinking_s) + _share(a.thinking_share), _seconds(a.tool_s),
            _ratio(a.thought_to_action), _pct(a.plan_fidelity), _pct(a.context_pressure_max),
            str(a.loop_interventions), _halts(a)]


def _agents(agents: list[AgentKpis]) -> Table:
    table = _table("agents")
    table.add_column("agent", overflow="fold", min_width=8, ratio=1)
    for name in _COLUMNS:
        table.add_column(name, justify="right", overflow="fold")
    short = _short_names([a.agent for a in agents])
    for a in agents:
        table.add_row(escape(short[a.agent]), *_agent_cells(a))
    table.caption = " ".join((
        "ok: runs that succeeded; tok/task, $/task: tokens and cost per run; thinking: time in "
        "model calls (its share of thinking + tools); tools: time in tools and sandbox execs; "
        "think:act: model calls per tool call; plan: tool calls run / planned; ctx max: the "
        "largest prompt / the model's context window; loops: loop interventions.",
        _unknown_windows(agents))).strip()
    return table


def _agents_turned(agents: list[AgentKpis]) -> Table:
    table = _table("agents")
    table.add_column("")
    short = _short_names([a.agent for a in agents])
    for a in agents:
        table.add_column(escape(short[a.agent]), justify="right", overflow="fold")
    columns = [_agent_cells(a) for a in agents]
    for n, name in enumerate(_ROWS):
        table.add_row(name, *(cells[n] for cells in columns))
    table.caption = _unknown_windows(agents)
    return table


def _agent_blocks(agents: list[AgentKpis], width: int) -> Group:
    """Too many agents for a column each: a name, then its figures."""
    short = _short_names([a.agent for a in agents])
    return _blocks("agents", [(short[a.agent], list(zip(_ROWS, _agent_cells(a), strict=True)),
                               "") for a in agents], _unknown_windows(agents), width)


def _unknown_windows(agents: list[AgentKpis]) -> str:
    unknown = sorted({m for a in agents for m in a.unknown_windows})
    if not unknown:
        return ""
    return (f"Context window unknown for {', '.join(unknown)}: give it with --context-window "
            "MODEL=TOKENS")


def _short_names(agents: list[str]) -> dict[str, str]:
    """An agent's function name (`pkg.mod:shop` -> `shop`) where no other agent shares it."""
    tail = {a: a.rsplit(":", 1)[-1] for a in agents}
    clash = {t for t in tail.values() if list(tail.values()).count(t) > 1}
    return {a: a if t in clash else t for a, t in tail.items()}


def _tool_cells(t: ToolKpis) -> tuple[list[str], str]:
    """A tool's figures as markup (in the order of `_TOOL_COLUMNS`), and its errors and
    refusals as plain text."""
    notes = [f"{n} {kind}" for kind, n in t.error_types.items()]
    notes += [f"{n} refused by {guard}" for guard, n in t.refused_by.items()]
    return [str(t.calls), str(t.ok), str(t.errors), str(t.refused), _pct(t.p_success),
            _seconds(t.mean_s), _seconds(t.max_s)], ", ".join(notes)


def _tools(tools: list[ToolKpis], *, notes: bool) -> Table:
    """`notes`: the errors and refusals in a column of their own; else under the table, a
    line per tool that has some (the figures then fit a narrower terminal)."""
    table = _table("tools")
    table.add_column("tool", overflow="fold")
    for name in _TOOL_COLUMNS:
        table.add_column(name, justify="right", overflow="fold")
    if notes:
        table.add_column("errors and refusals", overflow="fold")
    below = []
    for t in tools:
        figures, said = _tool_cells(t)
        table.add_row(escape(t.tool), *figures, *([escape(said)] if notes else []))
        if said and not notes:
            below.append(f"{escape(t.tool)}: {escape(said)}")
    table.caption = "\n".join([*below, _TOOLS_CAPTION])
    return table


def _tool_blocks(tools: list[ToolKpis], width: int) -> Group:
    """Too narrow for the figures side by side: a tool's name, then its figures."""
    return _blocks("tools", [(t.tool, list(zip(_TOOL_COLUMNS, figures, strict=True)), said)
                             for t in tools for figures, said in [_tool_cells(t)]],
                   _TOOLS_CAPTION, width)


def _blocks(title: str, items: Sequence[tuple[str, list[tuple[str, str]], str]],
            caption: str, width: int) -> Group:
    """A title, then per item its name and, indented, its `label figure` pairs and a note, on
    as few lines as `width` allows: a pair is never split over two lines (`refused` / `1`)."""
    parts: list[RenderableType] = [Text(title, style="italic")]
    for name, figures, note in items:
        parts.append(Text(name, style="bold"))
        pairs = [Text.from_markup(f"{escape(label)} {value}") for label, value in figures]
        pairs += [Text(note)] if note else []
        lines = [pairs[0]]
        for pair in pairs[1:]:
            if 4 + lines[-1].cell_len + 3 + pair.cell_len <= width:
                lines[-1] = Text.assemble(lines[-1], " · ", pair)
            else:
                lines.append(pair)
        parts += [Padding(line, (0, 0, 0, 4)) for line in lines]
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def _table(title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
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
