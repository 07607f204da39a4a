"""Seeing runs: views built from the journal (the only record of what a run did).

One view, one renderer: the timeline (`timeline_rows`, `timeline_table`) is what `tether run`,
`tether show` and the demo print, so a guard decision or a token count looks the same everywhere.
"""

from tether.observe.timeline import (
    TimelineRow,
    TimelineTotals,
    timeline_rows,
    timeline_table,
    timeline_totals,
)

__all__ = ["TimelineRow", "TimelineTotals", "timeline_rows", "timeline_table", "timeline_totals"]
