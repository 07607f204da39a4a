"""DBOS Transact's side of `make bench-dbos`, run by the DBOS venv's python (.tether/dbos-venv,
made by mk/scale.mk); Tether never imports DBOS and this script never imports Tether.

    .tether/dbos-venv/bin/python benchmarks/dbos_side.py '{"url": "postgresql://...", "runs":
        1000, "steps": 10, "sleep": 0.05, "size": 0}'

The workload is Tether's `model_agent` (benchmarks/core/agents.py, kind "dict"): a workflow of
`steps` durable steps, each a simulated model call (`asyncio.sleep(sleep)`) returning the same
plain-dict message. All `runs` workflows are started at once with `DBOS.start_workflow_async`
and awaited; one workflow runs first as a warm-up. Prints one JSON object on stdout: wall and
process CPU (all threads) and the PostgreSQL backends' CPU (benchmarks/scale/pgcpu.py) from the
first start to the last result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from typing import Any

from dbos import DBOS, DBOSConfig

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.core.messages import message  # the same bytes as Tether's side
from benchmarks.scale.pgcpu import backend_cpu, spent


@DBOS.step()
async def model_call(name: str, i: int, size: int, sleep: float) -> dict[str, Any]:
    await asyncio.sleep(sleep)  # the simulated model call, inside the durable step
    return message(name, i, size)


@DBOS.workflow()
async def model_workflow(payload: dict[str, Any]) -> int:
    messages = []
    for i in range(payload["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await model_call(name, i, payload["size"], payload["sleep"]))
    return len(messages)


async def bench(cfg: dict[str, Any]) -> dict[str, Any]:
    payload = {"steps": cfg["steps"], "size": cfg.get("size", 0), "sleep": cfg["sleep"]}
    warm = await DBOS.start_workflow_async(model_workflow, payload)
    assert await warm.get_result() == cfg["steps"]
    server0 = backend_cpu(cfg["url"])
    c0, w0 = time.process_time(), time.perf_counter()
    handles = [await DBOS.start_workflow_async(model_workflow, payload)
               for _ in range(cfg["runs"])]
    started = time.perf_counter()
    results = await asyncio.gather(*(h.get_result() for h in handles))
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    server = spent(server0, backend_cpu(cfg["url"]))
    assert results == [cfg["steps"]] * cfg["runs"], set(results)
    return {"runs": cfg["runs"], "steps": cfg["steps"], "wall_s": wall, "cpu_s": cpu,
            "start_s": started - w0,
            "steps_per_s": cfg["runs"] * cfg["steps"] / wall,
            "cpu_per_step_us": cpu / (cfg["runs"] * cfg["steps"]) * 1e6,
            "server_cpu_per_step_us": server / (cfg["runs"] * cfg["steps"]) * 1e6,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    logging.disable(logging.WARNING)
    config: DBOSConfig = {"name": "tether-bench", "system_database_url": cfg["url"],
                          "log_level": "WARNING",
                          "dbos_system_schema": cfg.get("schema", "dbos")}
    DBOS(config=config)
    DBOS.launch()
    try:
        result = asyncio.run(bench(cfg))
    finally:
        DBOS.destroy()
    from importlib import metadata
    result["dbos"] = metadata.version("dbos")
    result["pid"] = os.getpid()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
