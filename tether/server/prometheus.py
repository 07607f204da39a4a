"""`GET /metrics` in Prometheus' text format: the worker's health as numbers and the depth of
the queue, for scraping, alerting and autoscaling (e.g. KEDA on the count of queued runs).

Why here and not only OpenTelemetry: `tether.observe` exports the agents' GenAI metrics over
OTLP when a collector is configured; a platform's first dashboard is a Prometheus scrape of its
workers, and the number an autoscaler needs — how many runs wait — is the database's, read on
scrape. Counts are of the whole database (no tenant, run or key is named), as a worker serves
every tenant of its queue. `QueueCounts` reads them at most every `COUNT_EVERY_S` seconds, one
read at a time: a scrape every few seconds from several Prometheus replicas costs the database
one `GROUP BY` now and then.
"""

from __future__ import annotations

import threading
import time

from tether.runtime import WorkerHealth
from tether.store import ALL_STATUSES, Store

#: how often the queue's counts are read from the database at most
COUNT_EVERY_S = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class QueueCounts:
    """Runs by status, read at most every `every` seconds (thread-safe)."""

    def __init__(self, store: Store, *, every: float = COUNT_EVERY_S) -> None:
        self.store = store
        self.every = every
        self._lock = threading.Lock()
        self._counts: dict[str, int] | None = None
        self._read_at = 0.0

    def get(self) -> dict[str, int] | None:
        """The counts, or None when the store cannot be read now (the scrape says so with
        `tether_store_up 0` instead of failing)."""
        with self._lock:
            if self._counts is None or time.monotonic() - self._read_at >= self.every:
                try:
                    self._counts = self.store.count_runs()
                except Exception:  # a store away: reported as down, not as a failed scrape
                    self._counts = None
                self._read_at = time.monotonic()
            return self._counts


def exposition(health: WorkerHealth | None, counts: dict[str, int] | None) -> str:
    """The text format (version 0.0.4) of `health` (a worker's, if the process runs one) and
    of `counts` (runs by status; None: the store did not answer)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(v)}" for labels, v in samples)

    metric("tether_store_up", "gauge", "Whether the store answered the last count of runs.",
           [("", 0.0 if counts is None else 1.0)])
    if counts is not None:
        statuses = sorted({*ALL_STATUSES, *counts})
        metric("tether_runs", "gauge", "Runs in the database by status (queued: waiting for a "
               "worker).", [(f'{{status="{_label(s)}"}}', float(counts.get(s, 0)))
                            for s in statuses])
    if health is not None:
        worker = f'{{worker="{_label(health.owner)}"}}'
        metric("tether_worker_serving", "gauge", "Whether the worker's claim loop runs.",
               [(worker, 1.0 if health.serving else 0.0)])
        metric("tether_worker_loop_silent_seconds", "gauge", "Seconds since the worker's event "
               "loop last ran its pulse (about 0.5 is normal; more: something blocks it).",
               [(worker, health.loop_silent_s or 0.0)])
        metric("tether_worker_executing", "gauge", "Runs the worker executes now.",
               [(worker, float(health.executing))])
        metric("tether_worker_concurrency", "gauge", "Runs the worker executes at most.",
               [(worker, float(health.concurrency))])
        metric("tether_worker_executions_total", "counter", "Executions the worker ended "
               "(finished, waiting or handed back) since it started, refused ones included.",
               [(worker, float(health.executed))])
        metric("tether_worker_refusals_total", "counter", "Runs the worker took and handed "
               "back without running anything (guards it cannot load) since it started.",
               [(worker, float(health.refused))])
        metric("tether_worker_claim_failures", "gauge", "Claims the store refused in a row "
               "(0: the last one worked).", [(worker, float(health.claim_failures))])
        metric("tether_worker_renewal_failures", "gauge", "Lease renewals the store refused "
               "in a row.", [(worker, float(health.renewal_failures))])
    return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6g}"
