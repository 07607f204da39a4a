"""`tether worker --ray`: a worker process whose steps that declare resources run as Ray tasks
on a local cluster it starts (no --ray-address), journaled as executed by Ray; and a clear
refusal, before the database is touched, where ray is not installed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tether import Tether
from tether.cli import app
from tether.runtime import Context
from tether.runtime.executors import Resources

ROOT = Path(__file__).resolve().parents[2]
AGENT = "tests.cli.test_worker_ray:heavy_step"
DEADLINE_S = 300.0  # a local Ray cluster takes 20-40 s to start on a loaded machine


def where_it_ran() -> dict[str, Any]:
    """Runs in a Ray worker process: says which, and what Ray reserved for it."""
    import ray

    assigned = ray.get_runtime_context().get_assigned_resources()
    return {"pid": os.getpid(), "cpus": assigned.get("CPU")}


async def heavy_step(ctx: Context, _: Any) -> Any:
    return await ctx.step("heavy", where_it_ran, resources=Resources(num_cpus=1))


@pytest.mark.slow
def test_tether_worker_ray_runs_a_step_with_resources_on_a_local_cluster(
        tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra: pip install 'tether[ray]'")
    db = tmp_path / "t.db"
    tether = Tether(str(db))
    run_id = tether.submit(AGENT, None)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)  # no address: the worker starts a cluster of its own
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker", "--ray", "--poll", "0.1", "--db", str(db)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not tether.get(run_id).finished:
            assert worker.poll() is None, f"the worker exited: {_read(log)}"
            assert time.monotonic() < deadline, f"the run never finished: {_read(log)}"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    output = _read(log)
    run = tether.get(run_id)
    assert run.status == "succeeded", (run.error, output)
    assert run.result["pid"] not in (worker.pid, os.getpid())  # a Ray worker process
    assert run.result["cpus"] == 1.0  # what the step asked for, reserved by Ray
    starts = [e.data for e in tether.events(run_id) if e.kind == "step_started"]
    assert starts == [{"attempt": 1, "resources": {"num_cpus": 1}, "executor": "ray"}]
    assert "steps with resources on the Ray cluster at" in output
    assert re.search(r"stopped after 1 execution$", output, re.M)
    tether.close()


def _read(log: Any) -> str:
    log.flush()
    log.seek(0)
    return str(log.read())


@pytest.mark.parametrize("args", [["--ray"], ["--ray-address", "ray://head:10001"]])
def test_without_ray_installed_the_worker_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    db = tmp_path / "never.db"
    result = CliRunner().invoke(app, ["worker", "--db", str(db), *args],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert ("--ray: ray is not installed in this Python; install the extra with pip install "
            "'tether[ray]'") in " ".join(result.output.split())
    assert not db.exists()  # refused before the database was opened (or created)
