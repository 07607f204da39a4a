"""Export marks: per run, the journal position up to which its spans reached the collector.

Live export queues spans for the exporter's thread (`_otlp_send.Shipper`), which sends them a
little later; a process killed in between never sends what it queued. So the mark is written to
the store only after a batch was accepted, and a worker that takes over a crashed run starts from
the mark: it sends what the dead worker had not sent, and nothing it had. A mark covers a run's
spans with `end_seq <= mark`; several spans can end at the same event, so a mark stops below any
span of that run still waiting in the queue (`marks_after`).

What is left: a batch the collector accepted whose mark the process died before writing (a few
milliseconds, the time of one small SQLite write) is sent again by the next worker, with the same
span ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tether.store import Store

log = logging.getLogger("tether.observe")

#: a span waiting to be sent: its run's id, the journal seq of the event that closed it, and the
#: span (its OTLP bytes from `_wire_spans`, or a `SpanRecord` for an exporter passed in)
Queued = tuple[str, int, Any]


class ExportMarks:
    """A store's export marks: read when a worker takes a run up, written once a batch of spans
    was accepted by the collector."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def exported_upto(self, run_id: str) -> int:
        """The run's mark in the store (0: none of its spans is known to have been sent)."""
        return self.store.spans_exported([run_id]).get(run_id, 0)

    def record(self, marks: dict[str, int]) -> None:
        """Write the marks (from the exporter's thread). A mark that cannot be written costs a
        resend after a crash, never the run: it is logged, not raised."""
        if not marks:
            return
        try:
            self.store.write(lambda tx: tx.mark_spans_exported(marks))
        except Exception as exc:
            log.debug("tracing: the export marks %s were not recorded: %s", marks, exc)


def marks_after(sent: Iterable[Queued], waiting: Iterable[Queued]) -> dict[str, int]:
    """The marks a batch `sent` (just accepted) moves forward to, `waiting` being the spans
    queued behind it. Spans are queued in journal order per run (a run's `end_seq`s never go
    down), so only each run's first waiting span can hold its mark back: when it closed at the
    same event as the last one sent, the mark stays one below that event."""
    # a run's last span sent is its highest: one comprehension over the batch (~2,000 spans
    # on the exporter's thread), not a comparison per span
    marks = {run_id: end_seq for run_id, end_seq, _ in sent}
    unseen = set(marks)
    for run_id, end_seq, _ in waiting:
        if not unseen:
            break
        if run_id in unseen:
            unseen.discard(run_id)
            if end_seq <= marks[run_id]:
                marks[run_id] = end_seq - 1
    return {run_id: seq for run_id, seq in marks.items() if seq > 0}
