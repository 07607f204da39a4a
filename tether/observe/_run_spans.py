"""A stored run's spans: the journal of a run and of its tree below read through `SpanBuilder`
(what `tether trace` draws and `export_run` sends; live export feeds the builder event by event
instead)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tether.store import Event, RunRecord

from .spans import SpanBuilder, SpanRecord

if TYPE_CHECKING:
    from tether.runtime import Tether


def spans_of_journal(run: RunRecord, events: Iterable[Event], *, content: bool | None = None,
                     redact: bool = True) -> list[SpanRecord]:
    """Every span of one run's journal (open ones ended at its last event), in the order they
    closed; `redact=False` keeps PII in their text (for an operator's own terminal only)."""
    builder = SpanBuilder(run, content=content, redact=redact)
    spans: list[SpanRecord] = []
    for e in events:
        spans += builder.feed(e)
    return spans + builder.close_open()


def tree_runs(tether: Tether, run_id: str) -> list[RunRecord]:
    """A run and its whole tree below (its children, theirs): the runs of one trace."""
    top = tether.get(run_id)
    return [top, *tether.store.descendants(top.id)]


def run_spans(tether: Tether, run_id: str, *, content: bool | None = None,
              redact: bool = True) -> list[SpanRecord]:
    """The spans of a run and of its whole tree below (its children, theirs), from the journal
    only. The trace id is the root run's, so a child's spans are part of its root's trace."""
    spans: list[SpanRecord] = []
    for r in tree_runs(tether, run_id):
        spans += spans_of_journal(r, tether.store.load_events(r.id), content=content,
                                  redact=redact)
    return spans
