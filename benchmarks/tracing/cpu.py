"""Where a measured run's CPU goes, for bench_tracing.py: the garbage collector's share of the
timed window, and a traced run's cost per span split into reading, encoding and sending."""

from __future__ import annotations

import gc
import time
from typing import Any


class GcTimer:
    """The CPU the garbage collector took (in any thread) and its full collections, until
    `stop`: tracing keeps spans and events alive for a while, which the collector may pay for."""

    def __init__(self) -> None:
        self.cpu_s, self.full, self._started = 0.0, 0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.cpu_s += time.process_time() - self._started
            self.full += info["generation"] == 2

    def stop(self) -> None:
        gc.callbacks.remove(self._tick)


def breakdown(tether: Any, run_id: str) -> dict[str, float]:
    """Where a traced run's extra CPU goes, per span, measured after the timed window on the
    same run: reading its events from the journal, making the spans' OTLP bytes from them (as
    live export does from the events handed over), and sending them by the exporter the
    environment configures."""
    from tether.observe._otlp_send import WireSink
    from tether.observe._otlp_wire import SpanEncoder
    from tether.observe._wire_spans import WireSpans
    from tether.observe.otel import BATCH_SIZE, exporter_from_env

    run = tether.get(run_id)
    t0 = time.process_time()
    events = tether.store.load_events(run_id)
    t1 = time.process_time()
    wire = WireSpans(run, SpanEncoder())
    queued = [q for e in events for q in wire.feed_event(e)] + wire.close_open_encoded()
    t2 = time.process_time()
    exporter = exporter_from_env()  # the same spans again (same ids: Phoenix keeps one copy)
    sink = WireSink(exporter)  # type: ignore[arg-type]
    spans = [span for _, _, span in queued]
    for i in range(0, len(spans), BATCH_SIZE):
        sink.send(spans[i:i + BATCH_SIZE])
    t3 = time.process_time()
    exporter.shutdown()
    n = len(spans)
    return {"read_us": 1e6 * (t1 - t0) / n, "encode_us": 1e6 * (t2 - t1) / n,
            "send_us": 1e6 * (t3 - t2) / n, "bytes": sum(len(s) for s in spans) / n}
