"""Concurrency growth (`bench_scale.py`): Tether's steps/s and worker memory with N runs in flight.

"In flight" = submitted and not finished: N runs of `model_agent` (10 steps, each a 50 ms simulated
model call) wait in the store; 1, 2 or 4 worker processes (default concurrency 256 each) serve them
for a measurement window. Steps/s is counted inside the window only (each worker counts the steps
it completes between `warm_s` after its first step and `measure_s` later), so the cost does not
depend on N and the same database serves every configuration: after each window the store is
topped up to N unfinished runs again. Memory is each worker's peak RSS (VmHWM) against its RSS once
its store was open (imports done, nothing claimed)."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from tether import Tether

from ..core.agents import model_agent
from .dbs import unfinished
from .fleet import Fleet

SUBMIT_CHUNK = 20_000


def payload(steps: int, sleep: float) -> dict[str, Any]:
    return {"steps": steps, "size": 0, "sleep": sleep, "kind": "dict"}


def top_up(url: str, target: int, steps: int, sleep: float) -> dict[str, float]:
    """Submit runs until `target` are unfinished at `url` (chunks of one transaction each)."""
    client = Tether(url)  # creates the schema of a fresh database
    before = unfinished(url)
    w0 = time.perf_counter()
    try:
        missing = target - before
        while missing > 0:
            n = min(missing, SUBMIT_CHUNK)
            client.submit_many(model_agent, [payload(steps, sleep)] * n)
            missing -= n
    finally:
        client.close()
    return {"submitted": max(0, target - before), "submit_s": time.perf_counter() - w0}


def window(url: str, workers: int, *, warm_s: float, measure_s: float, concurrency: int = 256,
           tracemalloc: int = 0) -> dict[str, Any]:
    """`workers` worker processes serve `url` for one measurement window; their reports and the
    totals (steps/s summed over the workers, CPU per step)."""
    in_flight = unfinished(url)
    fleet = Fleet(workers, {"url": url, "concurrency": concurrency, "mode": "window",
                            "warm_s": warm_s, "measure_s": measure_s,
                            "tracemalloc": tracemalloc})
    try:
        fleet.send("go")
        reports = fleet.reports()
    finally:
        fleet.kill()
    steps = sum(r["steps"] for r in reports)
    wall = statistics.mean(r["wall_s"] for r in reports)
    cpu = sum(r["cpu_s"] for r in reports)
    return {"workers": workers, "in_flight": in_flight, "reports": reports,
            "steps": steps, "steps_per_s": steps / wall, "load1": os.getloadavg()[0],
            "cpu_per_step_us": cpu / max(1, steps) * 1e6,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
            "growth_mb": max(r["peak_rss_mb"] - r["baseline_rss_mb"] for r in reports)}
