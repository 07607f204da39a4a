"""Metrics out over OTLP, live: each run's metrics are recorded when a worker of this process
ends it, and exported by the SDK's periodic reader.

Configuration is the standard OpenTelemetry environment only, as for the spans:
`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`; or
`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` (default
`tether`), `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000). With no endpoint set, or
`OTEL_SDK_DISABLED=true`, or `OTEL_METRICS_EXPORTER=none`, nothing is exported and the SDK is not
imported. The environment is read by the helpers the span export uses (`otel.otlp_*`, given the
signal).

How a run's end is noticed: the run follower the live span export uses too (`_follow`, on the
client's seams `Tether.worker_listeners` and `Worker.claim_listeners`) tells which runs this
process's workers claim; once a worker no longer executes one, its journal is
read once and, if it ended, its metrics are recorded (`MetricsRecorder.record_run`). Reading
committed events from a task of its own, never a hook inside the run's path, means recording can
neither slow nor break a run; the SDK exports from its own thread, and a dead collector costs one
warning line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tether.observe._follow import RunFollower
from tether.observe.metrics import MetricsRecorder
from tether.observe.otel import (
    ExportError,
    otlp_configured,
    otlp_destination,
    otlp_protocol,
    quiet_otlp_exporters,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter

    from tether.runtime import Tether, Worker

log = logging.getLogger("tether.observe")

POLL_SECONDS = 0.25
#: how long closing waits for the last metrics to be sent (a dead collector must not hold up
#: the end of `tether run`)
CLOSE_TIMEOUT_S = 2.0


def metric_exporter_from_env() -> MetricExporter:
    """The official OTLP metric exporter the environment names; it reads the endpoint and
    headers from the environment itself."""
    if otlp_protocol("metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    quiet_otlp_exporters()  # failures are reported once, by the reporting wrapper
    return OTLPMetricExporter()


def meter_provider_from_env(exporter: MetricExporter | None = None) -> MeterProvider:
    """A meter provider exporting periodically to `exporter` (default: OTLP, from the
    environment), with the service name the environment gives (default `tether`)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    where = otlp_destination("metrics") if exporter is None else type(exporter).__name__
    inner = exporter or metric_exporter_from_env()
    reader = PeriodicExportingMetricReader(_reporting(inner, where))
    # the spans' resource: one service name (and instance) for both signals of a process.
    # Not shut down at exit by the SDK: `LiveMetrics.close` does it, bounded; the SDK's own
    # exit hook would call it a second time and log "shutdown can only be called once" (after
    # a close that gave up on a dead collector)
    from ._otlp_send import resource

    return MeterProvider(resource=resource(), metric_readers=[reader], shutdown_on_exit=False)


def _reporting(inner: MetricExporter, where: str) -> MetricExporter:
    """`inner`, reporting its first failure once (a dead collector costs one warning, not one
    per export interval) and never raising into the SDK's export thread."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class ReportingMetricExporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__(preferred_temporality=inner._preferred_temporality,
                             preferred_aggregation=inner._preferred_aggregation)
            self.warned = False

        def export(self, metrics_data: Any, timeout_millis: float = 10_000,
                   **kwargs: Any) -> MetricExportResult:
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:  # an exporter bug must not kill the reader's thread
                result, why = MetricExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
            else:
                why = "the collector did not accept them"
            if result is not MetricExportResult.SUCCESS and not self.warned:
                self.warned = True
                log.warning("metrics: could not export to %s: %s (further failures are not "
                            "reported)", where, why)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    return ReportingMetricExporter()


class LiveMetrics(RunFollower):
    """Records the metrics of every run the client's workers end. Made by
    `export_metrics_live`; `close()` (or leaving the `with` block) records what is left and,
    if it made the meter provider, flushes it (waiting at most `CLOSE_TIMEOUT_S`)."""

    def __init__(self, tether: Tether, meter_provider: MeterProvider, *, own: bool = False,
                 context_windows: Mapping[str, int] | None = None,
                 poll: float = POLL_SECONDS, where: str = "the collector") -> None:
        self.where = where
        self.provider = meter_provider
        self.recorder = MetricsRecorder(meter_provider)
        self.context_windows = context_windows
        self.recorded = 0  # runs whose metrics were recorded
        self._own = own
        self._followed: set[str] = set()
        super().__init__(tether, poll=poll, name="tether-metrics")

    def follow(self, run_id: str, worker: Worker) -> None:
        self._followed.add(run_id)

    def following(self) -> bool:
        return bool(self._followed)

    def tick(self, executing: set[str] | None = None) -> None:
        """Record the runs no worker executes any more that ended (each run's end once: a run
        that only suspended is forgotten until a worker claims it again)."""
        if executing is None:
            executing = self.executing()
        for run_id in list(self._followed - executing):
            self._followed.discard(run_id)
            try:
                done = self.recorder.record_run(self._tether.store.load_events(run_id),
                                                context_windows=self.context_windows)
            except Exception as exc:  # metrics never break the worker they watch
                log.warning("metrics: could not record run %s: %s", run_id, exc)
                continue
            self.recorded += done

    def close(self) -> None:
        if self.closed:
            return
        self.unhook()
        if self._own:
            done = threading.Thread(target=self.provider.shutdown, daemon=True,
                                    name="tether-metrics-close")
            done.start()
            done.join(CLOSE_TIMEOUT_S)
            if done.is_alive():
                log.warning("metrics: the last metrics could not be sent to %s within %.0fs "
                            "and were dropped; is it running?", self.where, CLOSE_TIMEOUT_S)

    def __enter__(self) -> LiveMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_metrics_live(tether: Tether, meter_provider: MeterProvider | None = None, *,
                        context_windows: Mapping[str, int] | None = None) -> LiveMetrics | None:
    """Record the metrics of the runs `tether`'s workers end (`tether.run`, `tether.drive`,
    `tether worker`). Without `meter_provider`: OTLP export as the environment configures it,
    or None (nothing happens, the SDK is not imported) when no endpoint is set."""
    if meter_provider is not None:
        return LiveMetrics(tether, meter_provider, context_windows=context_windows)
    if not otlp_configured("metrics"):
        return None
    try:
        provider = meter_provider_from_env()
    except (ExportError, ImportError) as exc:
        log.warning("metrics: not exported: %s", exc)
        return None
    return LiveMetrics(tether, provider, own=True, context_windows=context_windows,
                       where=otlp_destination("metrics"))


__all__: Sequence[str] = ["LiveMetrics", "export_metrics_live", "meter_provider_from_env"]
