"""Export marks: per run, the journal position up to which its spans reached the collector.

Live export hands spans to the SDK's batch processor, which sends them from its own thread a
little later; a process killed in between never sends what it queued. So the mark is written to
the store only after a batch was accepted, and a worker that takes over a crashed run starts from
the mark: it sends what the dead worker had not sent, and nothing it had. A mark covers a run's
spans with `end_seq <= mark`; several spans can end at the same event, so a mark stops below any
span of that run still waiting in the queue.

What is left: a batch the collector accepted whose mark the process died before writing (a few
milliseconds, the time of one small SQLite write) is sent again by the next worker, with the same
span ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from tether.store import Store

log = logging.getLogger("tether.observe")


class ExportMarks:
    """The spans handed to the exporter and not yet sent, and the marks their sending earns."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._queued: dict[int, tuple[str, int]] = {}  # span id -> (run id, end seq)

    def exported_upto(self, run_id: str) -> int:
        """The run's mark in the store (0: none of its spans is known to have been sent)."""
        return self.store.spans_exported([run_id]).get(run_id, 0)

    def queued(self, span_id: int, run_id: str, end_seq: int) -> None:
        with self._lock:
            self._queued[span_id] = (run_id, end_seq)

    def sent(self, span_ids: Iterable[int]) -> dict[str, int]:
        """The marks the spans `span_ids` (just accepted by the collector) move forward to."""
        with self._lock:
            marks: dict[str, int] = {}
            for span_id in span_ids:
                run_seq = self._queued.pop(span_id, None)
                if run_seq is not None:
                    run_id, seq = run_seq
                    marks[run_id] = max(seq, marks.get(run_id, 0))
            for run_id, seq in self._queued.values():  # not sent yet: the mark stays below
                if run_id in marks and seq <= marks[run_id]:
                    marks[run_id] = seq - 1
        return {run_id: seq for run_id, seq in marks.items() if seq > 0}

    def record(self, marks: dict[str, int]) -> None:
        """Write the marks (from the exporter's thread). A mark that cannot be written costs a
        resend after a crash, never the run: it is logged, not raised."""
        if not marks:
            return
        try:
            self.store.write(lambda tx: tx.mark_spans_exported(marks))
        except Exception as exc:
            log.debug("tracing: the export marks %s were not recorded: %s", marks, exc)
