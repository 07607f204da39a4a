"""Spans out over OTLP: after the fact (`export_run`) and live as runs progress (`export_live`).

Configuration is the standard OpenTelemetry environment only: `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` (default `tether`). With no
endpoint set nothing is exported and the OpenTelemetry SDK is not even imported.

Spans are built from the journal (`tether.observe.spans`) with the journal's timestamps and
deterministic ids, and sent by the official OTLP exporters: encoded to OTLP by Tether
(`_wire_spans`, `_otlp_wire`: the bytes the SDK's encoder makes; the common steps straight from
their two journal events, with no span object in between), or handed as the SDK's finished
`ReadableSpan`s to an exporter a caller passes in; there is no tracer in the runtime's path.
Live export follows the runs a worker claims: their journal is read once when taken up,
and from then on the worker's committer hands over each run's events once they committed
(`GroupCommitter.commit_listeners`): the journal's next entries, exactly what is durable, not
read back (a gap in them, events another process wrote, is read from the journal). Every
`POLL_SECONDS` the events handed over are turned into spans on the worker's loop; a thread of its
own sends them in batches from a bounded queue (`_otlp_send.Shipper`), so a run never waits on a
collector. A dead collector costs one warning.

No duplicates after a crash, and nothing missing: a run's spans are sent in journal order, and
once a batch is accepted the run's export mark (the journal seq up to which its spans reached
the collector) is written to the store (`_trace_marks`). A worker that claims a run starts from
the mark, so a run resumed elsewhere (its earlier events replayed from the journal) sends what the
dead worker had not sent, and nothing it had; a run first executed without export has its whole
trace sent by the first worker that exports. The one window left is a batch accepted whose mark
the process died before writing (one small SQLite write): it is sent again, with the same ids.
"""

from __future__ import annotations

import collections
import logging
import os
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.store import Event, NewEvent, Store, loads
from tether.store import vocabulary as v

from ._follow import RunFollower
from ._otlp_wire import SpanEncoder
from ._run_spans import run_spans
from ._trace_marks import ExportMarks, Queued
from ._wire_spans import WireSpans, journal_event, run_wire_spans
from .spans import SpanBuilder

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from tether.runtime import Tether, Worker
    from tether.runtime.committer import GroupCommitter

log = logging.getLogger("tether.observe")

POLL_SECONDS = 0.25
#: how long the exporter's thread gathers spans before sending fewer than BATCH_SIZE. Spans reach
#: the collector at most this late (`close()` sends what is left at once)
BATCH_DELAY_MS = 2000
#: spans the exporter's thread sends at once: an OTLP/HTTP request costs the exporter's HTTP
#: client ~1-3 ms of CPU whatever it holds (~4 µs a span at 512 a request, ~1.4 at 2,000); the
#: requests are cut at `_otlp_send.MAX_REQUEST_BYTES`, an exporter passed in gets 512 at a time
BATCH_SIZE = 2048
QUEUE_SIZE = 8 * BATCH_SIZE  # spans waiting to be sent: one poll of a busy worker must fit
#: how long closing a live export waits for the last spans to be sent (a dead collector must
#: not hold up the end of `tether run`)
CLOSE_TIMEOUT_S = 2.0


class ExportError(Exception):
    """Spans could not be exported (not configured, or the collector refused or is down)."""


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def otlp_configured(signal: str = "traces") -> bool:
    """Whether the environment asks for export of `signal` (`traces`, `metrics`): an OTLP
    endpoint is set, the SDK is not disabled and the signal's exporter is not `none`."""
    if (_env("OTEL_SDK_DISABLED").lower() == "true"
            or _env(f"OTEL_{signal.upper()}_EXPORTER") == "none"):
        return False
    return bool(_env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
                or _env("OTEL_EXPORTER_OTLP_ENDPOINT"))


def otlp_protocol(signal: str = "traces") -> str:
    protocol = (_env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
                or _env("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol not in ("http/protobuf", "grpc"):
        raise ExportError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use 'http/protobuf' "
            "(the default) or 'grpc'")
    if protocol == "http/protobuf":
        _check_http_endpoints(signal)
    return protocol


def _check_http_endpoints(signal: str) -> None:
    """An HTTP endpoint without its scheme (`127.0.0.1:4318`) is a URL the exporter cannot
    send to; the export then failed as if the collector were down ("is it running?")."""
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    name = own if _env(own) else "OTEL_EXPORTER_OTLP_ENDPOINT"  # the one used (a gRPC base
    value = _env(name)  # endpoint beside the signal's own HTTP one is fine)
    if value and not value.lower().startswith(("http://", "https://")):
        raise ExportError(f"{name}={value!r} is not an http:// or https:// URL; write "
                          f"http://{value.split('://')[-1]} (or https://)")


def otlp_destination(signal: str = "traces") -> str:
    """Where `signal` goes, as people configured it: the endpoint and the protocol (the
    exporters add `/v1/<signal>` to a plain HTTP endpoint themselves)."""
    protocol = otlp_protocol(signal)
    own = _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own:
        return f"{own} ({protocol})"
    base = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    where = base if protocol == "grpc" else f"{base.rstrip('/')}/v1/{signal}"
    return f"{where} ({protocol})"


def check_otlp_environment() -> None:
    """Raise `ExportError` for an export configuration that cannot work (a protocol not
    supported, an HTTP endpoint without its scheme) before anything runs: `tether run` found
    out only after it had queued the run, and left it queued."""
    for signal in ("traces", "metrics"):
        if otlp_configured(signal):
            otlp_protocol(signal)


def exporter_from_env() -> SpanExporter:
    """The official OTLP span exporter the environment names (HTTP/protobuf or gRPC), able to
    send spans Tether encoded itself (`_otlp_send.wire_exporter`)."""
    if not otlp_configured():
        raise ExportError(
            "no trace destination: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318) "
            "or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and OTEL_EXPORTER_OTLP_PROTOCOL=grpc for a "
            "gRPC collector")
    protocol = otlp_protocol()
    try:
        from ._otlp_send import wire_exporter
    except ImportError as exc:
        raise ExportError(f"trace export needs the OpenTelemetry exporters ({exc.name} is "
                          "missing): pip install 'tether[otel]'") from exc
    quiet_otlp_exporters()
    return wire_exporter(protocol)


def quiet_otlp_exporters() -> None:
    """Silence the OTLP exporters' own log lines ("Transient error ... retrying" per retry,
    "Failed to export" per batch): Tether reports a failed export itself, once, and a dead
    collector must cost one warning line. Done for every exporter Tether drives, the ones the
    environment configures and the ones a caller passes in."""
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)


def export_run(tether: Tether, run_id: str, exporter: SpanExporter | None = None, *,
               content: bool | None = None) -> int:
    """Send the spans of a run and its tree (after the fact) and return how many were sent.
    `exporter` default: the OTLP exporter the environment configures. Raises `ExportError`
    when nothing is configured or the collector did not take them."""
    from ._otlp_send import WireSink, sink_for

    own = exporter is None
    quiet_otlp_exporters()
    target = exporter_from_env() if exporter is None else exporter
    ok = True
    try:
        sink = sink_for(target)
        # the spans as live export makes them: OTLP bytes for the OTLP exporters
        spans: Sequence[Any] = (
            [span for _, _, span in run_wire_spans(tether, run_id, sink.encoder,
                                                   content=content)]
            if isinstance(sink, WireSink) else run_spans(tether, run_id, content=content))
        # in the live exporter's batches (the sink cuts them into requests a collector takes)
        for at in range(0, len(spans), BATCH_SIZE):
            ok = sink.send(spans[at:at + BATCH_SIZE])
            if not ok:
                break
    finally:
        if own:
            target.shutdown()
    if not ok:
        where = otlp_destination() if own else type(target).__name__
        raise ExportError(f"the collector at {where} did not take the {len(spans)} spans of "
                          f"run {run_id}; is it running?")
    return len(spans)


class _RecordSpans(SpanBuilder):
    """For an exporter passed in (it takes the SDK's spans): the spans as records, queued as
    `WireSpans` queues its bytes."""

    def feed_event(self, e: Event) -> list[Queued]:
        run_id = self.run.id
        return [(run_id, s.end_seq, s) for s in self.feed(e)]

    def feed_handed(self, events: Sequence[NewEvent], after: int) -> tuple[list[Queued], int]:
        """`WireSpans.feed_handed`: the spans closed by `events` past seq `after`."""
        spans, after, _ = self.drain(collections.deque((events,)), after)
        return spans, after

    def drain(self, handed: collections.deque[Sequence[NewEvent]],
              after: int) -> tuple[list[Queued], int, str | None]:
        """`WireSpans.drain`: the batches handed over, up to a later one that does not follow."""
        spans: list[Queued] = []
        last_kind: str | None = None
        while handed:
            for e in handed.popleft():
                if e.seq > after:
                    after, last_kind = e.seq, e.kind
                    spans += self.feed_event(journal_event(self.run.id, e.seq, e.kind, e.key,
                                                           e.name, loads(e.data), e.ts))
            if handed and handed[0] and handed[0][0].seq > after + 1:
                break
        return spans, after, last_kind


class _RunTail:
    """One followed run: its spans' builder and how far its journal was turned into spans.

    Its events come from two places: the journal, read once when the run is taken up (what
    earlier workers and attempts wrote) and whenever the events handed over skip some; and the
    events this process's committer just committed for it (`handed`, in commit order), which
    are the journal's next entries without reading them back."""

    def __init__(self, store: Store, spans: WireSpans | _RecordSpans, exported_upto: int) -> None:
        self.store = store
        self.run_id = spans.run.id
        self.spans = spans
        self.seq = 0
        self.ended = False
        #: filled by the committer's thread, emptied by `poll` (deque: thread-safe appends)
        self.handed: collections.deque[Sequence[NewEvent]] = collections.deque()
        self.pending: list[Queued] = []
        for e in store.load_events(self.run_id):  # spans already sent are not sent again
            self.pending += [s for s in self._feed(e) if s[1] > exported_upto]

    def _feed(self, e: Event) -> list[Queued]:
        self.seq = e.seq
        self.ended = e.kind in v.RUN_ENDS
        return self.spans.feed_event(e)

    def poll(self) -> list[Queued]:
        """The spans closed by the events handed over since the last poll."""
        spans, self.pending = self.pending, []
        handed = self.handed
        while handed:
            if handed[0][0].seq > self.seq + 1:  # written elsewhere, or before this tail existed
                spans += self.read_journal()
            closed, seq, kind = self.spans.drain(handed, self.seq)  # up to the next gap, if any
            if closed:
                spans += closed
            if seq > self.seq:
                self.seq, self.ended = seq, kind in v.RUN_ENDS
        return spans

    def read_journal(self) -> list[Queued]:
        """The spans closed by the journal's events after the last one fed."""
        spans: list[Queued] = []
        for e in self.store.load_events(self.run_id, after_seq=self.seq):
            spans += self._feed(e)
        return spans


class LiveExport(RunFollower):
    """Exports the spans of every run the client's workers execute, as events commit.

    Made by `export_live`; `close()` (or leaving the `with` block) sends what is left, waiting
    at most `CLOSE_TIMEOUT_S`."""

    def __init__(self, tether: Tether, exporter: SpanExporter, *, where: str = "",
                 content: bool | None = None, poll: float = POLL_SECONDS) -> None:
        from ._otlp_send import Shipper

        quiet_otlp_exporters()
        self.store = tether.store
        self.content = content
        self.marks = ExportMarks(tether.store)
        #: the queue and thread that send (`sent`: spans the collector accepted)
        self.exporter = Shipper(exporter, where or type(exporter).__name__, self.marks,
                                batch_size=BATCH_SIZE, delay_s=BATCH_DELAY_MS / 1000,
                                queue_size=QUEUE_SIZE)
        #: the official OTLP exporters are handed the spans as OTLP bytes, encoded on this
        #: (the worker's) thread as the steps end; an exporter passed in gets the SDK's spans
        self._encoder = SpanEncoder() if hasattr(exporter, "send_encoded") else None
        self._tails: dict[str, _RunTail] = {}
        self._watermarks: dict[str, int] = {}  # runs followed before, not executing now
        #: CPU the worker's thread spent following journals and queueing spans (`tick`); with
        #: `exporter.cpu_s`, what tracing costs in its own code (what it costs a process in all,
        #: cache and lock effects included, is measured by benchmarks/bench_tracing.py)
        self.tick_cpu_s = 0.0
        #: the committers listened to (weakly: a worker's committer goes when its serving ends)
        self._committers: weakref.WeakSet[GroupCommitter] = weakref.WeakSet()
        super().__init__(tether, poll=poll, name="tether-trace-export")

    def detached(self) -> None:
        for committer in list(self._committers):
            if self._committed in committer.commit_listeners:
                committer.commit_listeners.remove(self._committed)

    def _committed(self, run_id: str, events: Sequence[NewEvent]) -> None:
        """From the committer's thread: a followed run's events, just committed."""
        tail = self._tails.get(run_id)
        if tail is not None and events:
            tail.handed.append(events)

    def follow(self, run_id: str, worker: Worker) -> None:
        # the committer the worker writes with now (a worker that serves again makes another)
        committer = worker.committer
        if self._committed not in committer.commit_listeners:
            committer.commit_listeners.append(self._committed)
            self._committers.add(committer)
        if run_id not in self._tails:
            # a run the worker started unwritten (`Worker.start_new`) is not in the store yet
            run = worker.started_as(run_id) or self.store.get_run(run_id)
            if run is None:
                return
            # what this process queued already, or what reached a collector from any process
            upto = max(self._watermarks.pop(run_id, 0), self.marks.exported_upto(run_id))
            spans = (_RecordSpans(run, content=self.content) if self._encoder is None
                     else WireSpans(run, self._encoder, content=self.content))
            self._tails[run_id] = _RunTail(self.store, spans, upto)

    def following(self) -> bool:
        return bool(self._tails)

    def tick(self, executing: set[str] | None = None) -> None:
        """Export what the followed runs' new events closed; stop following runs no worker
        executes any more (after this last look at their journal)."""
        started = time.thread_time()
        if executing is None:
            # a snapshot before reading: a run that ends meanwhile is read once more next tick
            executing = self.executing()
        for run_id, tail in list(self._tails.items()):
            done = run_id not in executing
            try:
                spans = tail.poll()
                if done:  # what was journaled by others (or before the tail existed)
                    spans += tail.read_journal()
            except Exception as exc:  # tracing never breaks the worker it watches
                self.exporter.warn(f"could not read the journal of run {run_id}: {exc}")
                spans = []
            self.exporter.put(spans)
            if done:
                del self._tails[run_id]
                if not tail.ended:
                    self._watermarks[run_id] = tail.seq
        self.tick_cpu_s += time.thread_time() - started

    def force_flush(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Send the spans of everything journaled so far now, without waiting for their batch
        to be due, and block until the exporter has been handed them: before a process is
        frozen or its results are read elsewhere (the SDK's `TracerProvider.force_flush`).
        Call it on the thread that runs the workers; False when `timeout_s` passed first."""
        if self.closed:
            return True
        self.tick()  # a run that has ended gets its last look (its own span) now
        return self.exporter.flush(timeout_s)

    def close(self) -> None:
        """Export what is left and stop; waits at most `CLOSE_TIMEOUT_S` for the collector."""
        if self.closed:
            return
        self.unhook()
        self.exporter.close(CLOSE_TIMEOUT_S, lambda: self.exporter.warn(
            f"the last spans could not be sent to {self.exporter.where} within "
            f"{CLOSE_TIMEOUT_S:.0f}s and were dropped"))

    def __enter__(self) -> LiveExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_live(tether: Tether, exporter: SpanExporter | None = None, *,
                content: bool | None = None) -> LiveExport | None:
    """Turn live trace export on for the runs `tether`'s workers execute (including
    `tether.run(...)` and `tether.drive(...)`). Without `exporter`, the OTLP exporter the
    environment configures; with no endpoint set, nothing happens and None is returned.

        with export_live(Tether("app.db")) or contextlib.nullcontext():
            ...
    """
    if exporter is None:
        if not otlp_configured():
            return None
        return LiveExport(tether, exporter_from_env(), where=otlp_destination(), content=content)
    return LiveExport(tether, exporter, content=content)
