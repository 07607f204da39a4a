"""Spans out over OTLP: after the fact (`export_run`) and live as runs progress (`export_live`).

Configuration is the standard OpenTelemetry environment only: `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` (default `tether`). With no
endpoint set nothing is exported and the OpenTelemetry SDK is not even imported.

Spans are built from the journal (`tether.observe.spans`) and handed to the official SDK as
finished `ReadableSpan`s with the journal's timestamps and deterministic ids; there is no tracer
in the runtime's path. Live export follows runs the way `tether worker -v` does
(`tether.cli.follow.WorkerProgress`): from a worker's claim, poll the store for the events after
the last one seen and turn what they closed into spans. Polling committed events, not a hook in
the runtime, means exporting sees exactly what is durable and can neither slow nor break a run;
the SDK's batch processor sends from its own thread. A dead collector costs one warning.

No duplicates after a crash, and nothing missing: a run's spans are sent in journal order, and
once a batch is accepted the run's export mark (the journal seq up to which its spans reached
the collector) is written to the store (`_trace_marks`). A worker that claims a run starts from
the mark, so a run resumed elsewhere (its earlier events replayed from the journal) sends what the
dead worker had not sent, and nothing it had; a run first executed without export has its whole
trace sent by the first worker that exports. The one window left is a batch accepted whose mark
the process died before writing (one small SQLite write): it is sent again, with the same ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.store import RunRecord, Store

from ._trace_marks import ExportMarks
from .spans import SEMCONV_VERSION, SpanBuilder, SpanRecord, run_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

    from tether.runtime import Tether, Worker

log = logging.getLogger("tether.observe")

POLL_SECONDS = 0.25
#: how long the batch processor gathers spans before sending fewer than BATCH_SIZE: each request
#: costs ~1-3 ms of CPU (the HTTP client's own work, the export mark's SQLite write), so at 0.5 s a
#: busy worker sent batches of ~100 spans and paid ~20 µs per span for them. Spans reach the
#: collector at most this late (`close()` sends what is left at once)
BATCH_DELAY_MS = 2000
BATCH_SIZE = 512  # spans per OTLP request, as the SDK's batch processor sends them
QUEUE_SIZE = 32 * BATCH_SIZE  # spans waiting to be sent: one poll of a busy worker must fit
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
    return protocol


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


def exporter_from_env() -> SpanExporter:
    """The official OTLP span exporter the environment names (HTTP/protobuf or gRPC)."""
    if not otlp_configured():
        raise ExportError(
            "no trace destination: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318) "
            "or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and OTEL_EXPORTER_OTLP_PROTOCOL=grpc for a "
            "gRPC collector")
    try:
        if otlp_protocol() == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
    except ImportError as exc:
        raise ExportError(f"trace export needs the OpenTelemetry exporters ({exc.name} is "
                          "missing): pip install 'tether[otel]'") from exc
    quiet_otlp_exporters()
    return OTLPSpanExporter()


def quiet_otlp_exporters() -> None:
    """Silence the OTLP exporters' own log lines ("Transient error ... retrying" per retry,
    "Failed to export" per batch): Tether reports a failed export itself, once, and a dead
    collector must cost one warning line. Done for every exporter Tether drives, the ones the
    environment configures and the ones a caller passes in."""
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)


def _resource() -> Resource:
    """The service's resource, hashed once: the OTLP encoder groups spans by resource, and the
    SDK's `Resource.__hash__` serialises its attributes to JSON on every call (a third of the
    export's cost per span)."""
    from opentelemetry.sdk.resources import Resource

    from tether import __version__

    made = Resource.create({
        "service.name": _env("OTEL_SERVICE_NAME") or "tether",
        "telemetry.sdk.name": "opentelemetry", "tether.version": __version__,
    })

    class _HashedOnce(Resource):
        _hash = hash(made)

        def __hash__(self) -> int:
            return self._hash

        def __eq__(self, other: object) -> bool:
            return other is self or super().__eq__(other)

    return _HashedOnce(dict(made.attributes), made.schema_url)


class SpanConverter:
    """SpanRecords as the SDK's finished spans (one resource and scope for all of them).

    Made once per exporter: what repeats from span to span (the trace id as an int, the
    parent's context, the kinds and statuses) is made once, not per span."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        from tether import __version__

        self.resource = _resource()
        self.scope = InstrumentationScope(
            "tether", __version__, f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}")
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._status = {"ok": Status(StatusCode.OK), "unset": Status(StatusCode.UNSET)}
        self._kinds = {"client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
        self._traces: dict[str, int] = {}
        self._parents: dict[tuple[str, str], SpanContext] = {}
        self._span, self._event, self._context = ReadableSpan, Event, SpanContext
        self._error = lambda message: Status(StatusCode.ERROR, message or None)

    def _parent(self, trace_id: int, trace_hex: str, parent_hex: str) -> Any:
        key = (trace_hex, parent_hex)
        parent = self._parents.get(key)
        if parent is None:
            if len(self._parents) > 4096:  # a long-lived worker: keep the recent runs' only
                self._parents.clear()
            parent = self._parents[key] = self._context(
                trace_id, int(parent_hex, 16), is_remote=False, trace_flags=self._sampled)
        return parent

    def __call__(self, span: SpanRecord) -> ReadableSpan:
        trace_id = self._traces.get(span.trace_id)
        if trace_id is None:
            if len(self._traces) > 4096:
                self._traces.clear()
            trace_id = self._traces[span.trace_id] = int(span.trace_id, 16)
        status = self._status.get(span.status) or self._error(span.status_message)
        parent = None if not span.parent_id else self._parent(trace_id, span.trace_id,
                                                              span.parent_id)
        attributes = dict(span.attributes)
        attributes["tether.journal.seq"] = span.end_seq
        return self._span(
            name=span.name, parent=parent, resource=self.resource,
            context=self._context(trace_id, int(span.span_id, 16), is_remote=False,
                                  trace_flags=self._sampled),
            attributes=attributes,
            events=[self._event(ev.name, dict(ev.attributes), _ns(ev.ts))
                    for ev in span.events] if span.events else (),
            kind=self._kinds[span.kind], status=status, start_time=_ns(span.start),
            end_time=_ns(span.end), instrumentation_scope=self.scope)


def _ns(ts: float) -> int:
    return round(ts * 1e9)


def export_run(tether: Tether, run_id: str, exporter: SpanExporter | None = None, *,
               content: bool | None = None) -> int:
    """Send the spans of a run and its tree (after the fact) and return how many were sent.
    `exporter` default: the OTLP exporter the environment configures. Raises `ExportError`
    when nothing is configured or the collector did not take them."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    spans = run_spans(tether, run_id, content=content)
    own = exporter is None
    quiet_otlp_exporters()
    target = exporter_from_env() if exporter is None else exporter
    result = SpanExportResult.SUCCESS
    try:
        convert = SpanConverter()
        # in the batch processor's batch size: a collector limits the size of one request
        # (gRPC receivers take 4 MB by default), and a long run has thousands of spans
        for at in range(0, len(spans), BATCH_SIZE):
            result = target.export([convert(s) for s in spans[at:at + BATCH_SIZE]])
            if result is not SpanExportResult.SUCCESS:
                break
    finally:
        if own:
            target.shutdown()
    if result is not SpanExportResult.SUCCESS:
        where = otlp_destination() if own else type(target).__name__
        raise ExportError(f"the collector at {where} did not take the {len(spans)} spans of "
                          f"run {run_id}; is it running?")
    return len(spans)


class _ReportingExporter:
    """Wraps the real exporter: a failure is reported once (a dead collector must cost one
    warning, not one per batch), and export never raises into the SDK's thread."""

    def __init__(self, inner: SpanExporter, where: str,
                 marks: ExportMarks | None = None) -> None:
        self.inner = inner
        self.where = where
        self.warned = False
        self.sent = 0
        self.marks = marks
        self.cpu_s = 0.0  # CPU its thread spent exporting (encoding, sending, marks)

    def warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning("tracing: %s (further export failures are not reported)", message)

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        started = time.thread_time()
        try:
            return self._export(spans)
        finally:
            self.cpu_s += time.thread_time() - started

    def _export(self, spans: Sequence[ReadableSpan]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            result, why = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        else:
            why = "the collector did not accept them"
        if result is SpanExportResult.SUCCESS:
            self.sent += len(spans)
            if self.marks is not None:
                self.marks.record(self.marks.sent(s.context.span_id for s in spans
                                                  if s.context is not None))
        else:
            self.warn(f"could not export {len(spans)} span(s) to {self.where}: {why}")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class _RunTail:
    """One followed run: its span builder and how far its journal was turned into spans."""

    def __init__(self, store: Store, run: RunRecord, exported_upto: int,
                 content: bool | None) -> None:
        self.store = store
        self.run_id = run.id
        self.builder = SpanBuilder(run, content=content)
        self.seq = 0
        self.ended = False
        self.pending: list[SpanRecord] = []
        for e in store.load_events(run.id):  # spans already sent are not sent again
            self.pending += [s for s in self._feed(e) if s.end_seq > exported_upto]

    def _feed(self, e: Any) -> list[SpanRecord]:
        from tether.store import vocabulary as v

        self.seq = e.seq
        self.ended = e.kind in v.RUN_ENDS
        return self.builder.feed(e)

    def poll(self) -> list[SpanRecord]:
        spans, self.pending = self.pending, []
        for e in self.store.load_events(self.run_id, after_seq=self.seq):
            spans += self._feed(e)
        return spans


class LiveExport:
    """Exports the spans of every run the client's workers execute, as events commit.

    Made by `export_live`; `close()` (or leaving the `with` block) sends what is left, waiting
    at most `CLOSE_TIMEOUT_S`."""

    def __init__(self, tether: Tether, exporter: SpanExporter, *, where: str = "",
                 content: bool | None = None, poll: float = POLL_SECONDS) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        quiet_otlp_exporters()
        self.store = tether.store
        self.content = content
        self.poll_s = poll
        self.marks = ExportMarks(tether.store)
        self.exporter = _ReportingExporter(exporter, where or type(exporter).__name__,
                                           self.marks)
        self._processor = BatchSpanProcessor(self.exporter,  # type: ignore[arg-type]
                                             schedule_delay_millis=BATCH_DELAY_MS,
                                             max_export_batch_size=BATCH_SIZE,
                                             max_queue_size=QUEUE_SIZE)
        self._convert = SpanConverter()
        self._workers: list[Worker] = []
        self._tails: dict[str, _RunTail] = {}
        self._watermarks: dict[str, int] = {}  # runs followed before, not executing now
        self._task: asyncio.Task[None] | None = None
        self._tether = tether
        self.closed = False
        #: CPU the worker's thread spent following journals and queueing spans (`tick`); with
        #: `exporter.cpu_s`, what tracing costs in its own code (what it costs a process in all,
        #: cache and lock effects included, is measured by benchmarks/bench_tracing.py)
        self.tick_cpu_s = 0.0
        tether.worker_listeners.append(self.attach)
        for worker in list(tether._workers):
            self.attach(worker)

    def attach(self, worker: Worker) -> None:
        """Follow the runs `worker` claims (done for every worker the client creates)."""
        self._workers.append(worker)
        worker.claim_listeners.append(self._claimed)

    def _claimed(self, run_id: str) -> None:
        if self.closed:
            return
        if run_id not in self._tails:
            run = self.store.get_run(run_id)
            if run is None:
                return
            # what this process queued already, or what reached a collector from any process
            upto = max(self._watermarks.pop(run_id, 0), self.marks.exported_upto(run_id))
            self._tails[run_id] = _RunTail(self.store, run, upto, self.content)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._follow(), name="tether-trace-export")

    async def _follow(self) -> None:
        while self._tails and not self.closed:
            await asyncio.sleep(self.poll_s)
            self.tick()

    def tick(self, executing: set[str] | None = None) -> None:
        """Export what the followed runs' new events closed; stop following runs no worker
        executes any more (after this last look at their journal)."""
        started = time.thread_time()
        if executing is None:
            # a snapshot before reading: a run that ends meanwhile is read once more next tick
            executing = {r for w in self._workers for r in w.executing}
        for run_id, tail in list(self._tails.items()):
            try:
                spans = tail.poll()
            except Exception as exc:  # tracing never breaks the worker it watches
                self.exporter.warn(f"could not read the journal of run {run_id}: {exc}")
                spans = []
            for span in spans:
                sdk = self._convert(span)
                self.marks.queued(sdk.context.span_id, run_id, span.end_seq)
                self._processor.on_end(sdk)
            if run_id not in executing:
                del self._tails[run_id]
                if not tail.ended:
                    self._watermarks[run_id] = tail.seq
        self.tick_cpu_s += time.thread_time() - started

    def close(self) -> None:
        """Export what is left and stop; waits at most `CLOSE_TIMEOUT_S` for the collector."""
        if self.closed:
            return
        self.tick(executing=set())
        self.closed = True
        if self.attach in self._tether.worker_listeners:
            self._tether.worker_listeners.remove(self.attach)
        for worker in self._workers:
            if self._claimed in worker.claim_listeners:
                worker.claim_listeners.remove(self._claimed)
        done = threading.Thread(target=self._processor.shutdown, daemon=True,
                                name="tether-trace-close")
        done.start()
        done.join(CLOSE_TIMEOUT_S)
        if done.is_alive():
            self.exporter.warn(f"the last spans could not be sent to {self.exporter.where} "
                               f"within {CLOSE_TIMEOUT_S:.0f}s and were dropped")

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
