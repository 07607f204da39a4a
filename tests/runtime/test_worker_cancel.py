"""A cancel requested from another process stops a run a worker is executing: nothing tells the
worker but its heartbeat, which reads the cancel flag of every run it holds at each beat
(`Tx.cancel_requested`), on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from tether import Tether
from tether.store import vocabulary as v

from . import agents_core as A

_CANCEL_ELSEWHERE = """
import sys
from tether import Tether
t = Tether(sys.argv[1])
print(",".join(t.cancel(sys.argv[2], reason="stopped from elsewhere")))
t.close()
"""


async def test_a_cancel_from_another_process_stops_the_running_run(db_path: str) -> None:
    A.reset()
    tether = Tether(db_path, lease_ttl=3.0)  # a beat a second
    run_id = tether.submit(A.long_step, 3600.0)  # would hold the run for an hour
    worker = tether.worker()
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    try:
        deadline = time.monotonic() + 120
        while A.CALLS["slow"] == 0:
            assert time.monotonic() < deadline, "the worker never started the run"
            await asyncio.sleep(0.02)
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", _CANCEL_ELSEWHERE, db_path, run_id],
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == run_id
        deadline = time.monotonic() + 120
        while tether.get(run_id).status != "cancelled":
            assert time.monotonic() < deadline, "the heartbeat never stopped the run"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await serving
    record = tether.get(run_id)
    assert record.reason == "stopped from elsewhere"
    events = tether.events(run_id)
    failed = [e for e in events if e.kind == v.STEP_FAILED]
    assert failed and failed[0].data["type"] == "Cancelled"
    assert [e.kind for e in events][-1] == v.RUN_CANCELLED
    tether.close()
