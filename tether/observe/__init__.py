"""Seeing runs: views built from the journal (the only record of what a run did).

One view, one renderer: the timeline (`timeline_rows`, `timeline_table`, and `event_line` for one
event as it commits) is what `tether run`, `tether show` (and `--follow`), `tether worker -v` and
the demo print, so a guard decision or a token count looks the same everywhere.
"""

from tether.observe.kpis import (
    AgentKpis,
    KpiReport,
    ToolKpis,
    collect_kpis,
    kpi_report,
    parse_since,
    run_kpis,
)
from tether.observe.timeline import (
    TimelineBuilder,
    TimelineRow,
    TimelineTotals,
    event_line,
    timeline_rows,
    timeline_table,
    timeline_totals,
)

__all__ = [
    "AgentKpis", "KpiReport", "TimelineBuilder", "TimelineRow", "TimelineTotals", "ToolKpis",
    "collect_kpis", "event_line", "kpi_report", "parse_since", "run_kpis", "timeline_rows",
    "timeline_table", "timeline_totals",
]
