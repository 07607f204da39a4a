"""Getting spans to a collector: the SDK's spans, the official exporters, and the thread that
sends in batches. Imported only when export is configured (it imports the OpenTelemetry SDK).

Two ways out, one queue in front of them (`Shipper`):
- `WireSink`, for the official OTLP exporters the environment configures (`wire_exporter`): the
  spans come encoded already (`_wire_spans`: the same bytes the SDK's encoder makes, made on
  the worker's thread as steps end), are put in requests here, and the exporter sends them: its
  endpoint, headers, compression, TLS, timeout and retries, as configured by the
  `OTEL_EXPORTER_OTLP_*` variables.
- `SdkSink`, for any other `SpanExporter` a caller passes in (the SDK's in-memory exporter, a
  vendor's): the spans as the SDK's finished `ReadableSpan`s, handed to `exporter.export`.
"""

from __future__ import annotations

import collections
import logging
import operator
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ._otlp_wire import WireEncoder
from ._trace_marks import ExportMarks, Queued, marks_after
from .spans import SEMCONV_VERSION, SpanRecord

log = logging.getLogger("tether.observe")
_span_of = operator.itemgetter(2)  # a `Queued` span's bytes or record

#: spans per `export` call to an exporter a caller passed in (the SDK batch processor's default)
SDK_BATCH = 512
#: the most a request of Tether's own encoding holds: half of what a gRPC receiver takes by
#: default (4 MiB), so a batch of long spans (content, opted in) goes in several requests
MAX_REQUEST_BYTES = 2 * 1024 * 1024


def resource() -> Resource:
    """The service's resource, hashed once: the SDK's encoder groups spans by resource, and
    `Resource.__hash__` serialises its attributes to JSON on every call."""
    from tether import __version__

    made = Resource.create({
        "service.name": os.environ.get("OTEL_SERVICE_NAME", "").strip() or "tether",
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
        from tether import __version__

        self.resource = resource()
        self.scope = InstrumentationScope(
            "tether", __version__, f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}")
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._status = {"ok": Status(StatusCode.OK), "unset": Status(StatusCode.UNSET)}
        self._kinds = {"client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
        self._traces: dict[str, int] = {}
        self._parents: dict[tuple[str, str], SpanContext] = {}

    def _parent(self, trace_id: int, trace_hex: str, parent_hex: str) -> SpanContext:
        key = (trace_hex, parent_hex)
        parent = self._parents.get(key)
        if parent is None:
            if len(self._parents) > 4096:  # a long-lived worker: keep the recent runs' only
                self._parents.clear()
            parent = self._parents[key] = SpanContext(
                trace_id, int(parent_hex, 16), is_remote=False, trace_flags=self._sampled)
        return parent

    def __call__(self, span: SpanRecord) -> ReadableSpan:
        trace_id = self._traces.get(span.trace_id)
        if trace_id is None:
            if len(self._traces) > 4096:
                self._traces.clear()
            trace_id = self._traces[span.trace_id] = int(span.trace_id, 16)
        status = self._status.get(span.status) or Status(StatusCode.ERROR,
                                                          span.status_message or None)
        parent = None if not span.parent_id else self._parent(trace_id, span.trace_id,
                                                              span.parent_id)
        attributes = dict(span.attributes)
        attributes["tether.journal.seq"] = span.end_seq
        return ReadableSpan(
            name=span.name, parent=parent, resource=self.resource,
            context=SpanContext(trace_id, int(span.span_id, 16), is_remote=False,
                                trace_flags=self._sampled),
            attributes=attributes,
            events=[Event(ev.name, dict(ev.attributes), _ns(ev.ts))
                    for ev in span.events] if span.events else (),
            kind=self._kinds[span.kind], status=status, start_time=_ns(span.start),
            end_time=_ns(span.end), instrumentation_scope=self.scope)


def _ns(ts: float) -> int:
    return round(ts * 1e9)


class _SendsEncoded(Protocol):
    """An exporter of `wire_exporter`'s (`_otlp_http`, `_otlp_grpc`)."""

    def send_encoded(self, request: bytes, spans: int) -> bool: ...


def wire_exporter(protocol: str) -> SpanExporter:
    """The official OTLP exporter for `protocol`, configured by the environment (only that
    protocol's exporter is imported: gRPC's costs half a second)."""
    if protocol == "grpc":
        from ._otlp_grpc import WireGrpcExporter

        return WireGrpcExporter()
    from ._otlp_http import WireHttpExporter

    return WireHttpExporter()


class SdkSink:
    """Any `SpanExporter`: the spans as the SDK's `ReadableSpan`s."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self._convert = SpanConverter()

    def send(self, spans: Sequence[SpanRecord]) -> bool:
        convert = self._convert
        for at in range(0, len(spans), SDK_BATCH):
            sdk = [convert(s) for s in spans[at:at + SDK_BATCH]]
            if self.exporter.export(sdk) is not SpanExportResult.SUCCESS:
                return False
        return True


class WireSink:
    """An exporter of `wire_exporter`'s: spans encoded already (`_wire_spans`), put in requests
    here and sent by the exporter."""

    def __init__(self, exporter: _SendsEncoded) -> None:
        self.exporter = exporter
        made = SpanConverter()  # the same resource and scope as the SDK's spans carry
        self.encoder = WireEncoder(made.resource, made.scope)

    def send(self, spans: Sequence[bytes]) -> bool:
        """`spans`: each a `ScopeSpans.spans` field (`SpanEncoder.span_field`)."""
        requests = self.encoder.requests_of(spans, MAX_REQUEST_BYTES)
        share = -(-len(spans) // len(requests)) if requests else 0  # for the exporter's counts
        return all(self.exporter.send_encoded(request, share) for request in requests)


def sink_for(exporter: SpanExporter) -> SdkSink | WireSink:
    if hasattr(exporter, "send_encoded"):
        return WireSink(exporter)
    return SdkSink(exporter)


class Shipper:
    """A bounded queue of finished spans (`Queued`: OTLP bytes for a `WireSink`, records for an
    `SdkSink`) and the thread that sends them in batches.

    `put` never blocks and never raises: a run must not wait on a collector. A batch goes out
    when `batch_size` spans are waiting or the oldest waited `delay_s`; a full queue drops
    spans (one warning). Spans leave in the order they were put, so once a batch is accepted
    the runs' export marks can move up to it (`_trace_marks`)."""

    def __init__(self, exporter: SpanExporter, where: str, marks: ExportMarks | None, *,
                 batch_size: int, delay_s: float, queue_size: int) -> None:
        self.exporter = exporter
        self.where = where
        self.marks = marks
        self.sent = 0
        self.warned = False
        self.cpu_s = 0.0  # CPU its thread spent exporting (encoding, sending, marks)
        self._sink = sink_for(exporter)
        self._batch_size, self._delay_s, self._queue_size = batch_size, delay_s, queue_size
        self._queue: collections.deque[Queued] = collections.deque()
        lock = threading.Lock()
        self._wake = threading.Condition(lock)  # the sender: a batch may be due
        self._handled = threading.Condition(lock)  # `flush` callers: a batch left
        self._closing = False
        #: spans ever queued, taken by the sender, and sent or given up on; `flush` asks for
        #: everything up to `_flush_upto` to be taken now
        self._put_total = self._taken_total = self._handled_total = self._flush_upto = 0
        self._thread = threading.Thread(target=self._run, name="tether-trace-export",
                                        daemon=True)
        self._thread.start()

    def warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            log.warning("tracing: %s (further export failures are not reported)", message)

    def put(self, spans: list[Queued]) -> None:
        if not spans:
            return
        with self._wake:
            room = self._queue_size - len(self._queue)
            if room < len(spans):
                self.warn(f"{len(spans) - max(room, 0)} span(s) dropped: more than "
                          f"{self._queue_size} were waiting for {self.where}")
                spans = spans[:max(room, 0)]
            self._queue.extend(spans)
            self._put_total += len(spans)
            if len(self._queue) >= self._batch_size:
                self._wake.notify()

    def flush(self, timeout_s: float) -> bool:
        """Send everything queued so far now, not when its batch is due, and wait until the
        exporter has been handed it (accepted or not); False when that took over `timeout_s`."""
        with self._wake:
            target = self._put_total
            if self._handled_total >= target:
                return True
            self._flush_upto = max(self._flush_upto, target)
            self._wake.notify()
            return self._handled.wait_for(lambda: self._handled_total >= target, timeout_s)

    def _take(self) -> list[Queued] | None:
        """The next batch, once it is due; None once closed with nothing left."""
        with self._wake:
            deadline = time.monotonic() + self._delay_s
            while len(self._queue) < self._batch_size and not self._closing \
                    and self._flush_upto <= self._taken_total:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            if not self._queue:
                return None if self._closing else []
            n = min(self._batch_size, len(self._queue))
            self._taken_total += n
            if n == len(self._queue):  # the usual batch (its delay was up): all of it at once
                batch = list(self._queue)
                self._queue.clear()
                return batch
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                if batch:
                    started = time.thread_time()
                    self._send(batch)
                    self.cpu_s += time.thread_time() - started
                    with self._wake:
                        self._handled_total += len(batch)
                        self._handled.notify_all()
        finally:
            try:
                self.exporter.shutdown()
            except Exception as exc:
                log.debug("tracing: shutting the exporter down failed: %s", exc)

    def _send(self, batch: list[Queued]) -> None:
        try:
            ok, why = (self._sink.send(list(map(_span_of, batch))),
                       "the collector did not accept them")
        except Exception as exc:  # an exporter bug must not kill the thread
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            self.warn(f"could not export {len(batch)} span(s) to {self.where}: {why}")
            return
        self.sent += len(batch)
        if self.marks is not None:
            with self._wake:
                marks = marks_after(batch, self._queue)
            self.marks.record(marks)

    def close(self, timeout_s: float, on_late: Callable[[], Any]) -> None:
        """Send what is waiting and stop; `on_late()` if that took longer than `timeout_s`."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            on_late()
