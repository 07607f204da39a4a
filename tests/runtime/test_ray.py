"""Ray worker mode on a real local Ray cluster: steps that declare resources run as Ray tasks,
their outcomes journaled like any step's; a Ray worker killed under a step, a step out of
memory and a request no node can satisfy are handled by the runtime's own rules.

One local cluster (2 CPUs) serves the whole module: starting it takes 20-40 s on a loaded
machine. Ray's workers import this module to run its step functions (pickled by reference), so
the repository root goes on their PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.runtime import Context
from tether.runtime.executors import RayExecutor, RayNotInstalled, Resources
from tether.runtime.retry import StepRetry, grow_memory

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'tether[ray]'")

ROOT = str(Path(__file__).resolve().parents[2])
pytestmark = pytest.mark.slow


async def drive(tether: Tether, executor: RayExecutor, run_id: str,
                deadline: float = 240.0, *, waiting_counts: bool = True) -> Any:
    """Serve runs until `run_id` ends (or waits, unless `waiting_counts` is False: a parent
    waits for its children)."""
    worker = tether.worker(executor=executor)

    def until() -> bool:
        run = tether.get(run_id)
        return run.finished or (waiting_counts and run.status == "waiting")

    await asyncio.wait_for(worker.serve(until=until), deadline)
    return tether.get(run_id)


def started(tether: Tether, run_id: str, name: str) -> list[dict[str, Any]]:
    return [e.data for e in tether.events(run_id)
            if e.kind == "step_started" and e.name == name]


def failures(tether: Tether, run_id: str) -> list[str]:
    return [e.data["type"] for e in tether.events(run_id) if e.kind == "step_failed"]


# -- step functions (run in Ray's worker processes) ---------------------------------------------
def where(idempotency_key: str) -> dict[str, Any]:
    assigned = ray.get_runtime_context().get_assigned_resources()
    return {"pid": os.getpid(), "cpus": assigned.get("CPU"), "key": idempotency_key}


def needs_memory(needed: int) -> int:
    """Fails like a step that does not fit in the memory it was given."""
    memory = int(ray.get_runtime_context().get_assigned_resources().get("memory", 0))
    if memory < needed:
        raise MemoryError(f"needed {needed} bytes, had {memory}")
    return memory


def die_once(marker: str, idempotency_key: str) -> str:
    """Kills its own Ray worker the first time (as the OOM killer or a node loss would)."""
    if not os.path.exists(marker):
        Path(marker).write_text(idempotency_key)
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def always_die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def charge(effects_db: str, i: int, idempotency_key: str) -> int:
    """A side effect made safe to repeat with the idempotency key: every execution is counted,
    the effect itself only once per key. One child in a hundred is slow, and says which Ray
    worker runs it while it is (a target the test can kill mid-step without a race)."""
    if i % 100 == 50:
        with sqlite3.connect(effects_db, timeout=60) as db:
            db.execute("INSERT INTO slow (pid) VALUES (?)", (os.getpid(),))
        time.sleep(2.0)
        with sqlite3.connect(effects_db, timeout=60) as db:
            db.execute("DELETE FROM slow WHERE pid = ?", (os.getpid(),))
    time.sleep(0.02)
    with sqlite3.connect(effects_db, timeout=60) as db:
        db.execute("INSERT INTO executions (key) VALUES (?)", (idempotency_key,))
        db.execute("INSERT OR IGNORE INTO effects (key, i) VALUES (?, ?)", (idempotency_key, i))
    return i * i


# -- agents ----------------------------------------------------------------------------------
async def heavy_where(ctx: Context, _: Any) -> Any:
    return await ctx.step("heavy", where, resources=Resources(num_cpus=0.5))


async def pid_async(wait: float) -> int:
    await asyncio.sleep(wait)
    return os.getpid()


async def async_and_timed_out(ctx: Context, _: Any) -> Any:
    pid = await ctx.step("async", pid_async, 0.0, resources=Resources(num_cpus=0.5))
    await ctx.step("late", time.sleep, 120, resources=Resources(num_cpus=0.5), timeout=2.0)
    return pid


async def heavy_local(ctx: Context, _: Any) -> Any:
    return await ctx.step("local", os.getpid, resources=Resources(num_cpus=4))


async def oom_then_fits(ctx: Context, retry: bool) -> Any:
    policy = StepRetry(max_attempts=4, on_oom=grow_memory(2.0)) if retry else None
    return await ctx.step("fit", needs_memory, 200 << 20,
                          resources=Resources(num_cpus=0.5, memory=64 << 20), retry=policy)


async def killed_for_memory(ctx: Context, _: Any) -> Any:
    return await ctx.step("hog", time.sleep, 120, resources=Resources(memory=64 << 20),
                          retry=StepRetry(max_attempts=3, on_oom=grow_memory(2.0)))


async def dies_once(ctx: Context, marker: str) -> Any:
    return await ctx.step("dies", die_once, marker, resources=Resources(num_cpus=0.5))


async def dies_always(ctx: Context, _: Any) -> Any:
    return await ctx.step("dies", always_die, resources=Resources(num_cpus=0.5),
                          idempotent=True)


async def dies_not_idempotent(ctx: Context, _: Any) -> Any:
    return await ctx.step("dies", always_die, resources=Resources(num_cpus=0.5))


async def wants_a_gpu(ctx: Context, _: Any) -> Any:
    return await ctx.step("gpu", where, resources=Resources(num_gpus=1))


async def fork_join(ctx: Context, inp: dict[str, Any]) -> Any:
    kids = [await ctx.spawn(fork_child, {"db": inp["db"], "i": i}) for i in range(inp["n"])]
    return await ctx.gather(*(k.result() for k in kids))


async def fork_child(ctx: Context, inp: dict[str, Any]) -> Any:
    return await ctx.step("heavy", charge, inp["db"], inp["i"],
                          resources=Resources(num_cpus=0.5))


# -- tests -----------------------------------------------------------------------------------
async def test_a_heavy_step_runs_as_a_ray_task_with_its_resources(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(heavy_where, None)
    run = await drive(tether, executor, run_id)
    assert run.status == "succeeded", run.error
    assert run.result["pid"] != os.getpid()  # another process: a Ray worker
    assert run.result["cpus"] == 0.5  # what the step asked for, reserved by Ray
    assert run.result["key"].startswith(f"{run_id}:")
    assert started(tether, run_id, "heavy") == [
        {"attempt": 1, "idempotent": True, "resources": {"num_cpus": 0.5}, "executor": "ray"}]
    tether.close()


async def test_an_async_step_runs_on_ray_and_a_timed_out_task_is_in_doubt(
        tmp_path: Path, executor: RayExecutor) -> None:
    """A step past its timeout is killed on Ray: whether it took effect is unknown, so a step
    that is not idempotent waits for a human instead of failing as if nothing happened."""
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(async_and_timed_out, None)
    run = await drive(tether, executor, run_id)
    assert run.status == "waiting", run.error
    completed = [e for e in tether.events(run_id) if e.kind == "step_completed"]
    assert len(completed) == 1 and completed[0].data != os.getpid()
    in_doubt = [e.data for e in tether.events(run_id) if e.kind == "step_in_doubt"]
    assert len(in_doubt) == 1 and "did not finish within 2.0s" in in_doubt[0]["why"]
    tether.close()


async def test_without_an_executor_a_heavy_step_runs_in_the_worker(tmp_path: Path) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run = await tether.run(heavy_local, None)
    assert (run.status, run.result) == ("succeeded", os.getpid())
    assert started(tether, run.id, "local") == [{"attempt": 1, "resources": {"num_cpus": 4}}]
    tether.close()


async def test_out_of_memory_is_retried_with_more_memory(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(oom_then_fits, True)
    run = await drive(tether, executor, run_id)
    assert run.status == "succeeded", run.error
    assert run.result == 256 << 20
    attempts = started(tether, run_id, "fit")
    assert [a["resources"]["memory"] for a in attempts] == [64 << 20, 128 << 20, 256 << 20]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert failures(tether, run_id) == ["MemoryError", "MemoryError"]
    tether.close()


async def test_out_of_memory_without_a_policy_fails_the_step(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(oom_then_fits, False)
    run = await drive(tether, executor, run_id)
    assert run.status == "failed"
    assert "needed 209715200 bytes, had 67108864" in (run.error or "")
    assert len(started(tether, run_id, "fit")) == 1
    tether.close()


async def test_a_killed_ray_worker_is_a_retried_attempt_for_an_idempotent_step(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    marker = tmp_path / "died"
    run_id = tether.submit(dies_once, str(marker))
    run = await drive(tether, executor, run_id)
    assert (run.status, run.result) == ("succeeded", "survived"), run.error
    assert failures(tether, run_id) == ["StepLost"]
    attempts = started(tether, run_id, "dies")
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert marker.read_text() == f"{run_id}:{_first_start_seq(tether, run_id)}"  # same key
    tether.close()


def _first_start_seq(tether: Tether, run_id: str) -> int:
    return next(e.seq for e in tether.events(run_id) if e.kind == "step_started")


async def test_a_step_that_always_kills_its_worker_fails_after_three_attempts(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(dies_always, None)
    run = await drive(tether, executor, run_id)
    assert run.status == "failed"
    assert "StepLost" in (run.error or "") and "WorkerCrashedError" in (run.error or "")
    assert failures(tether, run_id) == ["StepLost"] * 3
    tether.close()


async def test_a_lost_non_idempotent_step_is_in_doubt(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(dies_not_idempotent, None)
    run = await drive(tether, executor, run_id)
    assert run.status == "waiting"
    in_doubt = [e for e in tether.events(run_id) if e.kind == "step_in_doubt"]
    assert len(in_doubt) == 1 and "WorkerCrashedError" in in_doubt[0].data["why"]
    assert len(started(tether, run_id, "dies")) == 1  # never silently twice
    tether.resolve(run_id, "skip", result="done by hand")
    run = await drive(tether, executor, run_id)
    assert (run.status, run.result) == ("succeeded", "done by hand")
    tether.close()


async def test_a_request_no_node_can_satisfy_fails_at_once(
        tmp_path: Path, executor: RayExecutor) -> None:
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(wants_a_gpu, None)
    run = await drive(tether, executor, run_id, deadline=60.0)
    assert run.status == "failed"
    assert "StepUnschedulable" in (run.error or "")
    assert "more than any node of the Ray cluster has (largest: CPU=2, GPU=0)" in (run.error or "")
    tether.close()


OOM_PROGRAM = """
import asyncio, json, sys
from tether import Tether
from tether.runtime import RayExecutor
from tests.runtime.test_ray import killed_for_memory

async def main():
    tether = Tether(sys.argv[1])
    executor = RayExecutor(num_cpus=1, include_dashboard=False, log_to_driver=False)
    run_id = tether.submit(killed_for_memory, None)
    worker = tether.worker(executor=executor)
    await worker.serve(until=lambda: tether.get(run_id).finished)
    run = tether.get(run_id)
    events = tether.events(run_id)
    print(json.dumps({
        "status": run.status, "error": run.error,
        "memory": [e.data["resources"]["memory"] for e in events if e.kind == "step_started"],
        "failed": [e.data["type"] for e in events if e.kind == "step_failed"]}))
    executor.close()

asyncio.run(main())
"""


def test_a_task_ray_kills_for_memory_is_retried_with_more_memory(tmp_path: Path) -> None:
    """Ray's memory monitor, set to kill above 1% of the node's memory, kills every attempt:
    each is journaled as out of memory and the next asks for twice the memory, three in all.
    A cluster of its own (this threshold would kill the module's tasks), so a process of its
    own: one Ray cluster per process."""
    env = {**os.environ, "RAY_memory_usage_threshold": "0.01",
           "RAY_memory_monitor_refresh_ms": "100", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", OOM_PROGRAM, str(tmp_path / "t.db")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "failed"
    assert "StepOutOfMemory: killed by Ray for lack of memory" in outcome["error"]
    assert outcome["memory"] == [64 << 20, 128 << 20, 256 << 20]
    assert outcome["failed"] == ["StepOutOfMemory"] * 3


def test_a_missing_ray_is_named_with_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(RayNotInstalled, match=r"pip install 'tether\[ray\]'"):
        RayExecutor().connect()


def _ray_worker_title(pid: int) -> str:
    """What Ray titles a worker process: `ray::STEP` while it executes a step's task."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


@pytest.mark.timeout(900)
async def test_fork_join_of_1000_children_survives_a_killed_ray_worker(
        tmp_path: Path, executor: RayExecutor) -> None:
    n = 1000
    effects_db = str(tmp_path / "effects.db")
    with sqlite3.connect(effects_db) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE executions (key TEXT)")
        db.execute("CREATE TABLE effects (key TEXT PRIMARY KEY, i INTEGER)")
        db.execute("CREATE TABLE slow (pid INTEGER)")
    tether = Tether(str(tmp_path / "t.db"))
    run_id = tether.submit(fork_join, {"db": effects_db, "n": n})
    killed: list[int] = []
    done = threading.Event()

    def killer() -> None:
        """Once a tenth of the children made their effect, SIGKILL the Ray worker that is
        executing a slow child's step (it is inside its 2 s sleep)."""
        while not done.is_set():
            with sqlite3.connect(effects_db, timeout=60) as db:
                made = db.execute("SELECT count(*) FROM effects").fetchone()[0]
                slow = [row[0] for row in db.execute("SELECT pid FROM slow")]
            if made >= n // 10 and slow and _ray_worker_title(slow[0]) == "ray::heavy":
                os.kill(slow[0], signal.SIGKILL)
                killed.append(slow[0])
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    started_at = time.monotonic()
    try:
        run = await drive(tether, executor, run_id, deadline=600.0, waiting_counts=False)
    finally:
        done.set()
        thread.join()
    elapsed = time.monotonic() - started_at
    assert run.status == "succeeded", run.error
    assert killed, "no Ray worker was seen executing a step"
    assert run.result == [i * i for i in range(n)]  # every child's result, once, in order
    with sqlite3.connect(effects_db) as db:
        effects = db.execute("SELECT count(*), count(DISTINCT i) FROM effects").fetchone()
        executions = db.execute("SELECT count(*) FROM executions").fetchone()[0]
    assert effects == (n, n)
    children = [r for r in tether.runs(limit=n + 10) if r.parent_id == run_id]
    assert len(children) == n and all(r.status == "succeeded" for r in children)
    lost = [(c.id, t) for c in children for t in failures(tether, c.id)]
    # the killed worker was executing one child's step: that attempt failed as lost, and ran
    # again (an execution the effect table deduplicated, or one killed before its effect)
    assert len(lost) == 1 and lost[0][1] == "StepLost", lost
    assert n <= executions <= n + 1
    print(f"\n1000-child fork-join on Ray: {elapsed:.1f} s, {executions} executions, "
          f"1 worker killed (pid {killed[0]})")
    tether.close()
