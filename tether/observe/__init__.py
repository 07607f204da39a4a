"""Seeing runs: views built from the journal (the only record of what a run did).

One view, one renderer: the timeline (`timeline_rows`, `timeline_table`, and `event_line` for one
event as it commits) is what `tether run`, `tether show` (and `--follow`), `tether worker -v` and
the demo print, so a guard decision or a token count looks the same everywhere. Spans
(`spans`, `otel`), metrics (`metrics`) and the agent KPIs (`kpis`) are read from the same journal.
"""

from tether.observe._kpi_live import LiveMetrics, export_metrics_live
from tether.observe._kpi_render import kpi_tables
from tether.observe._run_spans import run_spans, spans_of_journal
from tether.observe.kpis import (
    AgentKpis,
    KpiReport,
    ToolKpis,
    collect_kpis,
    kpi_report,
    parse_since,
    run_kpis,
)
from tether.observe.metrics import MetricsRecorder, record_run_metrics
from tether.observe.otel import (
    ExportError,
    LiveExport,
    check_otlp_environment,
    export_live,
    export_run,
    otlp_configured,
)
from tether.observe.spans import SpanBuilder, SpanEvent, SpanRecord
from tether.observe.timeline import (
    TimelineBuilder,
    TimelineRow,
    TimelineTotals,
    clip_detail,
    event_line,
    timeline_rows,
    timeline_table,
    timeline_totals,
)

__all__ = [  # noqa: RUF022 - grouped by concern (traces first)
    "ExportError", "LiveExport", "SpanBuilder", "SpanEvent", "SpanRecord", "export_live",
    "export_run", "check_otlp_environment", "otlp_configured", "run_spans", "spans_of_journal",
    "AgentKpis", "KpiReport", "TimelineBuilder", "TimelineRow", "TimelineTotals", "ToolKpis",
    "clip_detail", "collect_kpis", "event_line", "kpi_report", "parse_since", "run_kpis",
    "timeline_rows", "timeline_table", "timeline_totals",
    "LiveMetrics", "MetricsRecorder", "export_metrics_live", "kpi_tables", "record_run_metrics",
]
