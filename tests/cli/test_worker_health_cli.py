"""`tether worker --health-port`: a supervisor's probes over real HTTP to a real worker process.
The case a probe exists for: a step blocks the worker's event loop, the process looks alive,
and /healthz says it stalled (its probe server answers from a thread of its own)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tether import Context

from .cli_support import ROOT, tether, wait_status


async def blocks_the_loop(ctx: Context, seconds: float) -> str:
    time.sleep(seconds)  # the mistake: a blocking call in async code
    return "woke"


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _start(db: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", "--poll", "0.05", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    line = worker.stdout.readline()
    found = re.search(r"probes at (http://127\.0\.0\.1:\d+)/healthz", line)
    assert found, line + (worker.stderr.read() if worker.poll() is not None else "")
    return worker, found.group(1)


def test_probes_of_a_worker_say_live_ready_then_stalled_while_a_step_blocks_its_loop(
        tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    worker, base = _start(db, "--health-port", "0", "--health-stall", "1")
    try:
        deadline = time.monotonic() + 20
        while _get(base + "/readyz")[0] != 200:  # serving once its first claim is done
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _get(base + "/healthz") == (200, {"status": "ok"})
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "tether_store_up 1" in metrics and 'tether_runs{status="queued"} 0' in metrics
        assert re.search(r'tether_worker_serving\{worker="[^"]+"\} 1', metrics), metrics
        run_id = tether("run", f"{__name__}:blocks_the_loop", "-i", "4", "--detach",
                    db=db).stdout.strip()
        deadline = time.monotonic() + 20
        while (answer := _get(base + "/healthz"))[0] == 200:
            assert time.monotonic() < deadline, "the stall never showed"
            time.sleep(0.1)
        status, body = answer
        assert status == 503 and body["status"] == "stalled", body
        assert "event loop has not run for" in str(body["problems"]), body
        assert _get(base + "/readyz")[0] == 503  # not ready either: it takes no work
        wait_status(db, run_id, "succeeded")
        deadline = time.monotonic() + 10
        while _get(base + "/healthz")[0] != 200:
            assert time.monotonic() < deadline, "the worker never recovered"
            time.sleep(0.1)
        assert _get(base + "/nope")[0] == 404
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert re.search(r"stopped after 1 execution$", out, re.M)


def test_a_health_port_in_use_is_a_clear_error_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = tether("worker", "--health-port", str(port), db=tmp_path / "t.db", check=False)
    assert proc.returncode != 0
    assert f"--health-port {port}: cannot listen on 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
