"""The official OTLP/gRPC span exporter, also taking a request Tether encoded (`_otlp_wire`)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult


class WireGrpcExporter(OTLPSpanExporter):
    """Sends through the exporter's own channel and retries. The gRPC stub takes a message, so
    the request is parsed back into one (protobuf's C code: ~1 µs a span)."""

    _batch = 0

    def _translate_data(
            self, data: Sequence[ReadableSpan] | bytes) -> ExportTraceServiceRequest:
        if isinstance(data, bytes):
            return ExportTraceServiceRequest.FromString(data)
        return super()._translate_data(data)

    def _count_data(self, data: Sequence[ReadableSpan] | bytes) -> int:
        return self._batch if isinstance(data, bytes) else len(data)

    def send_encoded(self, request: bytes, spans: int) -> bool:
        self._batch = spans
        return self._export(request) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
