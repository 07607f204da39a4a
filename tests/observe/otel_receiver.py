"""A real OTLP receiver on 127.0.0.1 for the export tests: traces and metrics, HTTP/protobuf
or gRPC.

It decodes what the official exporters send with the official protobuf definitions
(`opentelemetry-proto`) and keeps every span received, so a test sees exactly what a collector
would: ids, parents, names, attributes, and how many times each span arrived; and every metrics
request with its headers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    service: str
    start_ns: int
    end_ns: int


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Received:
    """What a receiver got, thread-safe; `wait_for` polls until a condition holds."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0  # trace requests
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.metric_headers: list[dict[str, str]] = []
        self.metrics_got = threading.Event()
        self._lock = threading.Lock()

    def add_metrics(self, body: bytes, headers: dict[str, str]) -> None:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        with self._lock:
            self.metric_requests.append(request)
            self.metric_headers.append(headers)
        self.metrics_got.set()

    def metrics(self) -> dict[str, Any]:
        """metric name -> metric (the last one sent)."""
        with self._lock:
            requests = list(self.metric_requests)
        return {m.name: m for r in requests for rm in r.resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics}

    def metric_resource_values(self, key: str) -> set[str]:
        """The values the metrics' resources gave `key` (e.g. `service.name`)."""
        with self._lock:
            requests = list(self.metric_requests)
        return {a.value.string_value for r in requests for rm in r.resource_metrics
                for a in rm.resource.attributes if a.key == key}

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        got = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        service=str(resource.get("service.name")),
                        start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano))
        with self._lock:
            self.requests += 1
            self.spans += got

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, check: Callable[[list[ReceivedSpan]], bool],
                 timeout: float = 30.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.snapshot()
            if check(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"not received in {timeout}s; got {[s.name for s in spans]}")


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP receiver; yields (base endpoint for OTEL_EXPORTER_OTLP_ENDPOINT, Received)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/metrics":
                received.add_metrics(body, {k.lower(): v for k, v in self.headers.items()})
            elif self.path == "/v1/traces":
                received.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            else:
                self.send_response(404)
                self.end_headers()
                return
            reply = b""  # an empty Export*ServiceResponse
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC receiver; yields (endpoint, Received)."""
    import grpc

    received = Received()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.add_metrics(request.SerializeToString(),
                                 dict(context.invocation_metadata()))
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(0)


def closed_port() -> int:
    """A port nothing listens on (bound, then released): a dead collector."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
