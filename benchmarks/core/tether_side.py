"""Tether's side of the core benchmarks, in this process (LangGraph's is `lg_side.py`):

1. cpu         CPU per durable step; the breakdown (inside `write_batch` vs the rest, at
               synchronous FULL and NORMAL) and the bare sqlite3 floor for diagnosis
2. storage     database size after 100..800 steps with 1 KB messages
3. throughput  1,000 concurrent runs x 10 steps with a 50 ms simulated model call
4. resume      claim -> live for a run waiting with a ~1,000-event journal
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tether import BaseInterceptor, Context, Tether, Worker
from tether.runtime import GroupCommitter

from .agents import cycle_agent, model_agent, new_message, resume_agent
from .config import (
    CPU_REPEATS,
    CPU_STEPS,
    RESUME_REPEATS,
    RESUME_STEPS,
    STORAGE_MSG,
    STORAGE_STEPS,
    TP_RUNS,
    TP_SLEEP,
    TP_STEPS,
)
from .diag import DiagStore, synchronous_of, wal_checkpointed_size


# -- 1. CPU per durable step ------------------------------------------------------------------
async def tether_cpu(work: Path, steps: int = CPU_STEPS, repeats: int = CPU_REPEATS,
                     size: int = 0, kind: str = "message") -> dict[str, Any]:
    db = work / f"cpu-{kind}-{size}.db"
    client = Tether(db)
    # warm-up: one full-length run, so the measured ones see a grown WAL (the steady state of
    # a long-lived worker), as on LangGraph's side
    await client.run(cycle_agent, {"steps": steps, "size": size, "kind": kind})
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        run = await client.run(cycle_agent, {"steps": steps, "size": size, "kind": kind})
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert run.status == "succeeded" and run.result == steps, (run.status, run.error)
    events = client.store.count_events(run.id)
    client.close()
    return {"steps": steps, "cpu_s": cpu, "wall_s": wall, "events_per_run": events,
            "cpu_per_step_ms": statistics.median(cpu) / steps * 1000,
            "wall_per_step_ms": statistics.median(wall) / steps * 1000,
            "synchronous": synchronous_of(db), "kind": kind}


async def tether_cpu_breakdown(work: Path, synchronous: str, steps: int = CPU_STEPS,
                               repeats: int = CPU_REPEATS) -> dict[str, float]:
    """Where a step's CPU goes: inside `write_batch` (SQL, commit, fsync; on whichever thread
    commits) vs everything else (agent, ctx, journal bookkeeping, hand-offs)."""
    store = DiagStore(work / f"cpu-{synchronous}.db", synchronous)
    client = Tether(store)
    await client.run(cycle_agent, {"steps": steps, "size": 0})  # warm-up, as in tether_cpu
    total = 0.0
    store.commits, store.inline_commits, store.commit_cpu = 0, 0, 0.0
    for _ in range(repeats):
        c0 = time.process_time()
        run = await client.run(cycle_agent, {"steps": steps, "size": 0})
        total += time.process_time() - c0
        assert run.status == "succeeded"
    client.close()
    n = steps * repeats
    return {"total_us": total / n * 1e6, "commit_us": store.commit_cpu / n * 1e6,
            "rest_us": (total - store.commit_cpu) / n * 1e6,
            "commits_per_step": store.commits / n,
            "inline_share": store.inline_commits / max(1, store.commits)}


def sqlite_floor(work: Path, synchronous: str, commits: int = 2000) -> float:
    """CPU per commit of a bare sqlite3 loop doing what one Tether step writes — BEGIN
    IMMEDIATE, a lease lookup, two 7-column event rows into a rowid table with a (run_id, seq)
    index, COMMIT — with no runtime at all: the floor for any SQLite-backed journal that makes
    every step durable before the next, at this `synchronous` on this machine."""
    conn = sqlite3.connect(work / f"floor-{synchronous}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq "
                 "INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT, name TEXT, data BLOB, ts REAL "
                 "NOT NULL)")
    conn.execute("CREATE UNIQUE INDEX events_by_run ON events(run_id, seq)")
    conn.execute("CREATE TABLE leases (run_id TEXT PRIMARY KEY, owner TEXT, epoch INTEGER)")
    conn.execute("INSERT INTO leases VALUES ('r', 'w', 1)")
    data = json.dumps(new_message("message", "a", 0, 0)).encode()
    seq = 0
    for phase in ("warm-up", "measure"):
        c0 = time.process_time()
        for _ in range(commits if phase == "measure" else 200):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("SELECT owner, epoch FROM leases WHERE run_id=?", ("r",)).fetchone()
            rows = [("r", seq + 1, "step_completed", "1", "a", data, time.time()),
                    ("r", seq + 2, "step_started", "2", "b", b'{"attempt":1}', time.time())]
            seq += 2
            conn.execute("INSERT INTO events (run_id, seq, kind, key, name, data, ts) "
                         "VALUES (?,?,?,?,?,?,?), (?,?,?,?,?,?,?)", rows[0] + rows[1])
            conn.execute("COMMIT")
        cpu = time.process_time() - c0
    conn.close()
    return cpu / commits * 1e6


# -- 2. storage -------------------------------------------------------------------------------
async def tether_storage(work: Path, steps_list: list[int] = STORAGE_STEPS,
                         size: int = STORAGE_MSG) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    for steps in steps_list:
        db = work / f"storage-{steps}.db"
        client = Tether(db)
        run = await client.run(cycle_agent, {"steps": steps, "size": size})
        assert run.status == "succeeded", run.error
        client.close()
        sizes[str(steps)] = wal_checkpointed_size(db)
    conn = sqlite3.connect(db)
    try:
        pages = {f"{name}/{kind}": {"pages": n, "payload": payload, "unused": unused}
                 for name, kind, n, payload, unused in conn.execute(
                     "SELECT name, pagetype, COUNT(*), SUM(payload), SUM(unused) FROM dbstat "
                     "GROUP BY name, pagetype")}
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error as exc:  # dbstat is a compile-time option of SQLite
        pages, page_size = {"unavailable": {"error": str(exc)}}, 0
    conn.close()
    return {"bytes": sizes, "dbstat": pages, "page_size": page_size}


# -- 3. concurrent throughput -----------------------------------------------------------------
async def _throughput(db: Path, runs: int, steps: int, sleep: float,
                      batched: bool) -> dict[str, Any]:
    store = DiagStore(db)
    client = Tether(store)
    payload = {"steps": steps, "size": 0, "sleep": sleep}
    await client.run(model_agent, payload)  # warm-up
    before_events = sum(client.store.count_events(r.id) for r in client.runs(limit=10))
    c0, w0 = time.process_time(), time.perf_counter()
    if batched:  # Tether.submit_many: every run created in ONE transaction
        ids = client.submit_many(model_agent, [payload] * runs)
    else:
        ids = [client.submit(model_agent, payload) for _ in range(runs)]
    submit_s = time.perf_counter() - w0
    committer = GroupCommitter(client.store)
    worker = client.worker(concurrency=runs, committer=committer)
    store.commits, store.commit_wall, store.commit_cpu = 0, 0.0, 0.0
    w1 = time.perf_counter()
    await worker.serve(until=lambda: worker.executed >= runs)
    end = time.perf_counter()
    cpu = time.process_time() - c0
    committer.close()
    statuses = {client.get(i).status for i in ids}
    assert statuses == {"succeeded"}, statuses
    total_events = sum(client.store.count_events(r.id) for r in client.runs(limit=runs + 10))
    client.close()
    return {
        "runs": runs, "steps": steps, "submit_s": submit_s, "execute_s": end - w1,
        "wall_s": end - w0, "cpu_s": cpu,
        "steps_per_s": runs * steps / (end - w0),
        "steps_per_s_execute_only": runs * steps / (end - w1),
        "transactions": committer.batches, "ops": committer.ops,
        "events": total_events - before_events,
        "commit_wall_s": store.commit_wall, "commit_cpu_s": store.commit_cpu,
    }


async def tether_throughput(work: Path, runs: int = TP_RUNS, steps: int = TP_STEPS,
                            sleep: float = TP_SLEEP) -> dict[str, Any]:
    result = await _throughput(work / "throughput.db", runs, steps, sleep, batched=False)
    result["batched"] = await _throughput(work / "throughput-batched.db", runs, steps, sleep,
                                          batched=True)
    return result


# -- 4. resume --------------------------------------------------------------------------------
class _ReplayMark(BaseInterceptor):
    """Notes when a run has replayed `steps` journaled steps: the agent is live again."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.count: dict[str, int] = {}
        self.live: dict[str, float] = {}

    async def after(self, ctx: Context, effect: Any, result: Any, error: BaseException | None,
                    replay: bool) -> None:
        if replay:
            n = self.count[ctx.run_id] = self.count.get(ctx.run_id, 0) + 1
            if n == self.steps:
                self.live[ctx.run_id] = time.perf_counter()


class _ClaimTimedWorker(Worker):
    """Notes when a run was claimed (the claim transaction returned it)."""

    claimed: dict[str, float]

    def _start(self, run_id: str, epoch: int) -> None:
        self.claimed[run_id] = time.perf_counter()
        super()._start(run_id, epoch)


assert hasattr(Worker, "_start"), "Worker._start moved: update _ClaimTimedWorker"


async def tether_resume(work: Path, steps: int = RESUME_STEPS, repeats: int = RESUME_REPEATS,
                        size: int = 0) -> dict[str, Any]:
    db = work / "resume.db"
    client = Tether(db)
    mark = _ReplayMark(steps)
    worker = _ClaimTimedWorker(client.store, interceptors=[mark], concurrency=64)
    worker.claimed = {}
    ids = [client.submit(resume_agent, {"steps": steps, "size": size})
           for _ in range(repeats + 1)]
    await worker.serve(until=lambda: worker.executed >= len(ids))  # build: all wait for "go"
    assert {client.get(i).status for i in ids} == {"waiting"}
    journal = len(client.events(ids[0]))
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(stop=stop))
    claim_to_live, signal_to_live, load_ms = [], [], []
    for n, run_id in enumerate(ids):
        done = worker.executed
        t_signal = time.perf_counter()
        client.signal(run_id, "go")
        worker.kick()
        while worker.executed == done:
            await asyncio.sleep(0.001)
        assert client.get(run_id).status == "succeeded", client.get(run_id).error
        if n == 0:  # warm-up: first import of the agent module, first statements prepared
            continue
        claim_to_live.append(mark.live[run_id] - worker.claimed[run_id])
        signal_to_live.append(mark.live[run_id] - t_signal)
        t0 = time.perf_counter()
        client.store.load_events(run_id)
        load_ms.append((time.perf_counter() - t0) * 1000)
    stop.set()
    await serving
    client.close()
    return {"steps": steps, "journal_events": journal, "claim_to_live_s": claim_to_live,
            "p50_ms": statistics.median(claim_to_live) * 1000,
            "signal_to_live_p50_ms": statistics.median(signal_to_live) * 1000,
            "load_events_p50_ms": statistics.median(load_ms)}

# -- the benchmarks by name (`--only`, `--profile`) ---------------------------------------------
TETHER: dict[str, Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]] = {
    "cpu": tether_cpu, "storage": tether_storage, "throughput": tether_throughput,
    "resume": tether_resume}
