"""Tools declared heavy (`resources=`) on a real local Ray cluster: a worker with a Ray executor
runs each call as a Ray task, a worker without one runs it in its own process, and the guards
judge the call before the step, so a denied heavy tool never reaches Ray.

Ray's workers unpickle the tool (its module is imported by reference), so the repository root
goes on their PYTHONPATH, as in test_ray.py.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.guards import GuardConfig, Guards, loads_policy
from tether.runtime import Context
from tether.runtime.executors import RayExecutor
from tether.tools import ToolRegistry

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'tether[ray]'")

ROOT = str(Path(__file__).resolve().parents[2])
pytestmark = pytest.mark.slow

TOOLS = ToolRegistry()


@TOOLS.tool(resources={"num_cpus": 0.5})
def heavy_pid(label: str) -> dict[str, Any]:
    """Says which process ran it and what Ray reserved for it there."""
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not in a Ray worker: this test process (the Ray driver) or no Ray
        cpus = None
    return {"pid": os.getpid(), "label": label, "cpus": cpus}


@TOOLS.tool(side_effect="write", resources={"num_cpus": 0.5})
def heavy_write(marker: str) -> str:
    """Leaves a file behind if it ever runs (the denied call must not)."""
    Path(marker).write_text(str(os.getpid()))
    return "written"


POLICY = """\
version: 1
name: heavy
rules:
  - id: reads
    tools: heavy_pid
    effect: allow
"""


async def call_heavy_pid(ctx: Context, label: str) -> Any:
    result = await ctx.tool(TOOLS, "heavy_pid", {"label": label})
    return result.model_dump(mode="json")


async def call_heavy_write(ctx: Context, marker: str) -> Any:
    result = await ctx.tool(TOOLS, "heavy_write", {"marker": marker})
    return result.model_dump(mode="json")


async def drive(tether: Tether, executor: RayExecutor, run_id: str) -> Any:
    worker = tether.worker(executor=executor)
    await asyncio.wait_for(worker.serve(until=lambda: tether.get(run_id).finished), 240.0)
    return tether.get(run_id)


def started(tether: Tether, run_id: str, name: str) -> list[dict[str, Any]]:
    return [e.data for e in tether.events(run_id)
            if e.kind == "step_started" and e.name == name]


async def test_a_heavy_tool_runs_as_a_ray_task(tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(call_heavy_pid, "on ray")
    run = await drive(tether, executor, run_id)
    assert run.status == "succeeded", run.error
    assert run.result["ok"] is True, run.result
    output = run.result["output"]
    assert output["pid"] != os.getpid()  # another process: a Ray worker
    assert output["label"] == "on ray"
    assert output["cpus"] == 0.5  # what the tool declared, reserved by Ray
    [start] = started(tether, run_id, "tool:heavy_pid")
    assert start["executor"] == "ray"
    assert start["resources"] == {"num_cpus": 0.5}
    tether.close()


async def test_a_heavy_tool_on_a_worker_without_an_executor_runs_in_process(
        tmp_path: Path) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run = await tether.run(call_heavy_pid, "local")
    assert run.status == "succeeded", run.error
    assert run.result["ok"] is True, run.result
    assert run.result["output"]["pid"] == os.getpid()
    [start] = started(tether, run.id, "tool:heavy_pid")
    assert start["resources"] == {"num_cpus": 0.5}
    assert "executor" not in start
    tether.close()


async def test_a_denied_heavy_tool_never_reaches_ray(
        tmp_path: Path, executor: RayExecutor) -> None:
    guards = Guards(GuardConfig(policy=loads_policy(POLICY, "heavy.yaml")), tools=TOOLS)
    tether = Tether(str(tmp_path / "t.db"), interceptors=guards.interceptors())
    marker = tmp_path / "written"
    run_id = tether.submit(call_heavy_write, str(marker))
    run = await drive(tether, executor, run_id)
    # agent code calling the tool directly: the policy's denial fails the run
    assert run.status == "failed"
    assert "ActionDenied" in (run.error or "") and "'heavy_write'" in (run.error or "")
    assert not marker.exists()  # the tool never ran, on Ray or anywhere
    assert not any("executor" in data for data in started(tether, run_id, "tool:heavy_write"))
    assert not [e for e in tether.events(run_id)
                if e.kind == "step_completed" and e.name == "tool:heavy_write"]
    tether.close()
