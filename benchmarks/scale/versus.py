"""Tether vs DBOS Transact (`bench_dbos.py`): 1,000 concurrent workflows x 10 steps, each step a
50 ms simulated model call, on the same PostgreSQL server with synchronous commit on; Tether on
SQLite too; Tether with 1, 2 and 4 worker processes.

Tether's in-process side mirrors DBOS's (`dbos_side.py`): one process submits every run and
executes them (one worker, concurrency = runs), timed from the first submission to the last
result, with one warm-up run first. The worker-process side submits from the driver to 1/2/4
`worker_proc` processes already serving (concurrency = runs / workers each) and times submission
to the last run finished (polled every 20 ms); CPU is the worker processes' own."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from tether import Tether

from ..core.agents import model_agent
from .dbs import unfinished
from .fleet import ROOT, Fleet
from .growth import payload
from .pgcpu import backend_cpu, spent

DBOS_PYTHON = ROOT / ".tether" / "dbos-venv" / "bin" / "python"
DBOS_SIDE = ROOT / "benchmarks" / "dbos_side.py"


async def tether_in_process(url: str, runs: int, steps: int, sleep: float) -> dict[str, Any]:
    client = Tether(url)
    try:
        warm = await client.run(model_agent, payload(steps, sleep))
        assert warm.status == "succeeded", warm.error
        server0 = _server(url)
        c0, w0 = time.process_time(), time.perf_counter()
        ids = client.submit_many(model_agent, [payload(steps, sleep)] * runs)
        worker = client.worker(concurrency=runs)
        await worker.serve(until=lambda: worker.executed >= runs)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        server = spent(server0, _server(url))
        statuses = {client.get(i).status for i in ids}
        assert statuses == {"succeeded"}, statuses
    finally:
        client.close()
    return {"runs": runs, "steps": steps, "wall_s": wall, "cpu_s": cpu,
            "steps_per_s": runs * steps / wall, "cpu_per_step_us": cpu / (runs * steps) * 1e6,
            "server_cpu_per_step_us": server / (runs * steps) * 1e6}


def _server(url: str) -> dict[int, float]:
    """The PostgreSQL backends' CPU by pid (none for SQLite: no server)."""
    return backend_cpu(url) if url.startswith("postgresql://") else {}


def dbos(url: str, runs: int, steps: int, sleep: float,
         schema: str = "dbos") -> dict[str, Any]:
    """DBOS's side (`dbos_side.py` under the DBOS venv's python), its tables in `schema`."""
    if not DBOS_PYTHON.exists():
        raise FileNotFoundError(f"{DBOS_PYTHON} is missing: run `make bench-dbos-venv` first")
    cfg = {"url": url, "runs": runs, "steps": steps, "sleep": sleep, "size": 0,
           "schema": schema}
    out = subprocess.run([str(DBOS_PYTHON), str(DBOS_SIDE), json.dumps(cfg)], check=True,
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def tether_workers(url: str, workers: int, runs: int, steps: int,
                   sleep: float) -> dict[str, Any]:
    """`workers` processes serving `url` (a fresh database) execute `runs` submitted at once."""
    Tether(url).close()  # create the schema before the workers race to
    # each worker takes its share: with concurrency = runs the first to claim would take all
    fleet = Fleet(workers, {"url": url, "concurrency": -(-runs // workers), "mode": "drain"})
    try:
        fleet.send("go")
        client = Tether(url)
        server0 = _server(url)
        w0 = time.perf_counter()
        client.submit_many(model_agent, [payload(steps, sleep)] * runs)
        client.close()
        while unfinished(url):
            time.sleep(0.02)
        wall = time.perf_counter() - w0
        server = spent(server0, _server(url))
        fleet.send("stop")
        reports = fleet.reports()
    finally:
        fleet.kill()
    done = sum(r["steps"] for r in reports)
    assert done == runs * steps, (done, runs * steps)
    cpu = sum(r["cpu_s"] for r in reports)
    return {"workers": workers, "wall_s": wall, "steps_per_s": done / wall,
            "cpu_per_step_us": cpu / done * 1e6, "server_cpu_per_step_us": server / done * 1e6,
            "load1": os.getloadavg()[0],
            "per_worker_steps": [r["steps"] for r in reports],
            "peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in reports]}
