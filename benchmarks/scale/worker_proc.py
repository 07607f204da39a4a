"""One Tether worker process for the scale benchmarks, driven over stdin/stdout (one JSON line
each way), so that its CPU and memory are its own: the driver submits runs from another process.

    python -m benchmarks.scale.worker_proc '{"url": ..., "concurrency": 256, "mode": "window",
                                             "warm_s": 3, "measure_s": 12, "tracemalloc": 0}'

1. prints {"ready": ..., "rss_mb": ...} once the store is open (imports done: the baseline RSS);
2. waits for the line "go", then serves;
3. mode "window": after `warm_s` (counted from its first completed step) counts completed steps and
   its CPU for `measure_s`, then stops; mode "drain": serves until the line "stop" arrives;
4. prints one JSON line: steps (completed, not replayed) in the window or in total, CPU seconds,
   peak RSS (VmHWM) and RSS now, and with `tracemalloc` > 0 (window mode) the sites holding the
   most memory at the window's end and those that grew most during it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import tracemalloc
from typing import Any

from tether import BaseInterceptor, Context, Worker, open_store
from tether.runtime.interceptors import Effect


class StepCounter(BaseInterceptor[Context]):
    """Counts steps this worker completed (replayed ones excluded: they cost no durable write)."""

    def __init__(self) -> None:
        self.steps = 0
        self.first = asyncio.Event()

    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        if effect.kind == "step" and not replay and error is None:
            self.steps += 1
            self.first.set()


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS now, VmHWM the peak) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


_NOT_DATA = [tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen *"),  # code of modules imported lazily
             tracemalloc.Filter(False, "*/importlib/*")]


def snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(_NOT_DATA)


def top_allocations(end: tracemalloc.Snapshot, start: tracemalloc.Snapshot,
                    limit: int) -> dict[str, list[dict[str, Any]]]:
    """The sites holding the most memory at the window's end, and the sites that grew most
    during the window (imports left out: their code objects are no per-run cost)."""
    held = end.statistics("lineno")[:limit]
    grew = end.compare_to(start, "lineno")[:limit]
    return {"held": [{"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
                      "bytes": s.size, "count": s.count} for s in held],
            "grew": [{"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
                      "bytes": s.size_diff, "count": s.count_diff} for s in grew]}


async def readline() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def serve(cfg: dict[str, Any]) -> dict[str, Any]:
    store = open_store(cfg["url"])
    counter = StepCounter()
    worker = Worker(store, concurrency=cfg.get("concurrency", 256), interceptors=[counter])
    print(json.dumps({"ready": True, "rss_mb": status_mb("VmRSS")}), flush=True)
    if await readline() != "go":
        raise SystemExit("worker_proc: expected 'go' on stdin")
    if cfg.get("tracemalloc"):
        tracemalloc.start(1)
    stop = asyncio.Event()
    c0, w0 = time.process_time(), time.perf_counter()
    serving = asyncio.create_task(worker.serve(stop=stop))
    out: dict[str, Any] = {}
    if cfg.get("mode", "window") == "window":
        await counter.first.wait()
        await asyncio.sleep(cfg["warm_s"])
        start = snapshot() if cfg.get("tracemalloc") else None
        s1, c1, t1 = counter.steps, time.process_time(), time.perf_counter()
        await asyncio.sleep(cfg["measure_s"])
        s2, c2, t2 = counter.steps, time.process_time(), time.perf_counter()
        out.update(steps=s2 - s1, cpu_s=c2 - c1, wall_s=t2 - t1, active=len(worker.executing))
        if start is not None:
            out["top"] = top_allocations(snapshot(), start, cfg["tracemalloc"])
    else:
        if await readline() != "stop":
            raise SystemExit("worker_proc: expected 'stop' on stdin")
        out.update(steps=counter.steps, cpu_s=time.process_time() - c0,
                   wall_s=time.perf_counter() - w0)
    if cfg.get("tracemalloc"):
        out["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
    stop.set()
    await serving
    worker.committer.close()
    store.close()
    out.update(peak_rss_mb=status_mb("VmHWM"), rss_mb=status_mb("VmRSS"),
               maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               executed=worker.executed)
    return out


def main() -> None:
    print(json.dumps(asyncio.run(serve(json.loads(sys.argv[1])))), flush=True)


if __name__ == "__main__":
    main()
