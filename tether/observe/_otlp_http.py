"""The official OTLP/HTTP span exporter, also taking a request Tether encoded (`_otlp_wire`)."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter


class WireHttpExporter(OTLPSpanExporter):
    """Sends through the exporter's own HTTP client: the endpoint, headers, compression, TLS,
    timeout and retries the `OTEL_EXPORTER_OTLP_*` variables configure."""

    def send_encoded(self, request: bytes, spans: int) -> bool:
        if self._shutdown:
            return False
        return bool(self._client.export(request).success)
