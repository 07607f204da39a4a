"""Core runtime benchmarks: Tether vs LangGraph 1.2 (SQLite checkpointer, durability="sync").

Both systems run in ONE invocation of this script, one after the other on the same machine and the
same filesystem: Tether in this process, LangGraph as a subprocess with the interpreter of the
benchmark venv `benchmarks/.lg-venv` (see `lg_side.py`; created by `make bench-core`), exchanging
JSON. Tether never imports LangGraph.

    make bench-core                       # creates .venv and benchmarks/.lg-venv, then runs this
    .venv/bin/python benchmarks/bench_core.py [--only cpu,storage,throughput,resume]
    .venv/bin/python benchmarks/bench_core.py --profile cpu|throughput|resume   # cProfile Tether

Writes `benchmarks/results/core.md` (unless --only/--profile is given, which print to stdout).

1. cpu         2-node cycle (a <-> b), one message appended per node, 500 node executions:
               process CPU time (all threads) per durable step.       target: Tether <= 1/10 of LG
2. storage     database size after 100/200/400/800 steps with 1 KB messages, after a WAL
               checkpoint(TRUNCATE).                                   target: linear, <= 2 MB @800
3. throughput  1,000 concurrent runs x 10 steps, each step a 50 ms simulated model call.
               target: Tether steps/s >= 10x LG
4. resume      a run with a ~1,000-event journal (500 steps) waiting for a signal: time from the
               worker claiming it to the agent being live again (journal loaded and replayed).
               target: p50 <= 50 ms
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from tether import BaseInterceptor, Context, Tether, Worker
from tether.runtime import GroupCommitter
from tether.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
LG_PYTHON = ROOT / "benchmarks" / ".lg-venv" / "bin" / "python"
LG_SIDE = ROOT / "benchmarks" / "lg_side.py"
RESULT = ROOT / "benchmarks" / "results" / "core.md"
COMMAND = "make bench-core"

CPU_STEPS, CPU_REPEATS = 500, 3
STORAGE_STEPS, STORAGE_MSG = [100, 200, 400, 800], 1024
TP_RUNS, TP_STEPS, TP_SLEEP = 1000, 10, 0.05
RESUME_STEPS, RESUME_REPEATS = 500, 7
ROUNDS = {"throughput": 2}  # wall-clock bound and noisy on a shared machine: pair the sides twice

_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit "


def message(node: str, i: int, size: int) -> dict[str, Any]:
    """The message a node appends; identical to lg_side.message (same bytes on both sides)."""
    content = f"node {node}, step {i}"
    if size > len(content):
        content = (content + " " + _FILLER * (size // len(_FILLER) + 1))[:size]
    return {"role": "assistant", "content": content}


# -- agents (module level: runs name them by reference) ---------------------------------------
async def node(name: str, i: int, size: int) -> dict[str, Any]:
    return message(name, i, size)


async def model_call(name: str, i: int, size: int, sleep: float) -> dict[str, Any]:
    await asyncio.sleep(sleep)  # the simulated model call, inside the durable step
    return message(name, i, size)


async def cycle_agent(ctx: Context, input: dict[str, Any]) -> int:
    """LangGraph's a <-> b cycle as a Tether agent: one journaled step per node execution; the
    step returns the new message (the journal holds the delta), the agent holds the state."""
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, node, name, i, input["size"]))
    return len(messages)


async def model_agent(ctx: Context, input: dict[str, Any]) -> int:
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, model_call, name, i, input["size"], input["sleep"]))
    return len(messages)


async def resume_agent(ctx: Context, input: dict[str, Any]) -> int:
    """The cycle, then a durable wait: the run releases its worker and comes back on a signal."""
    messages: list[dict[str, Any]] = []
    for i in range(input["steps"]):
        name = "a" if i % 2 == 0 else "b"
        messages.append(await ctx.step(name, node, name, i, input["size"]))
    await ctx.wait_for("go")
    return len(messages)


# -- helpers ----------------------------------------------------------------------------------
def wal_checkpointed_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


class DiagStore(SQLiteStore):
    """Tether's SQLite store with commit timing (wall and committer-thread CPU per transaction)
    and, for diagnosis only, another `PRAGMA synchronous`. Behaviour is otherwise unchanged."""

    def __init__(self, path: Path, synchronous: str | None = None) -> None:
        self.synchronous = synchronous
        self.commits = 0
        self.inline_commits = 0
        self.commit_wall = 0.0
        self.commit_cpu = 0.0
        super().__init__(path)

    def _open(self) -> sqlite3.Connection:
        conn = super()._open()
        if self.synchronous:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    def write_batch(self, ops: Any, *, wait: bool = True) -> list[tuple[bool, Any]] | None:
        w, c = time.perf_counter(), time.thread_time()
        result = super().write_batch(ops, wait=wait)
        if result is not None:
            self.commits += 1
            self.inline_commits += not wait
            self.commit_wall += time.perf_counter() - w
            self.commit_cpu += time.thread_time() - c
        return result


assert hasattr(SQLiteStore, "_open"), "SQLiteStore._open moved: update DiagStore"


def conditions(work: Path, n: int = 200) -> dict[str, float]:
    """How loaded the machine is right now: load average and the cost of one 4 KB write+fsync
    in the benchmark directory (every durable commit pays at least one)."""
    path = work / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    walls = []
    c0 = time.process_time()
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            walls.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return {"load1": os.getloadavg()[0], "fsync_p50_ms": statistics.median(walls) * 1000,
            "fsync_cpu_us": (time.process_time() - c0) / n * 1e6}


def lg(bench: str, params: dict[str, Any]) -> dict[str, Any]:
    if not LG_PYTHON.exists():
        sys.exit(f"{LG_PYTHON} is missing: run `make bench-core` (it creates the LangGraph venv)")
    proc = subprocess.run([str(LG_PYTHON), str(LG_SIDE), bench, json.dumps(params)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"LangGraph side of {bench!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def synchronous_of(path: Path) -> int:
    # Tether sets it per connection; read it the way Tether's store opens the file
    from tether.store import SQLiteStore

    store = SQLiteStore(path)
    try:
        return int(store._conn().execute("PRAGMA synchronous").fetchone()[0])
    finally:
        store.close()


# -- 1. CPU per durable step ------------------------------------------------------------------
async def tether_cpu(work: Path, steps: int = CPU_STEPS, repeats: int = CPU_REPEATS,
                     size: int = 0) -> dict[str, Any]:
    db = work / "cpu.db"
    client = Tether(db)
    await client.run(cycle_agent, {"steps": 20, "size": size})  # warm-up
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        run = await client.run(cycle_agent, {"steps": steps, "size": size})
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert run.status == "succeeded" and run.result == steps, (run.status, run.error)
    events = client.store.count_events(run.id)
    client.close()
    return {"steps": steps, "cpu_s": cpu, "wall_s": wall, "events_per_run": events,
            "cpu_per_step_ms": statistics.median(cpu) / steps * 1000,
            "wall_per_step_ms": statistics.median(wall) / steps * 1000,
            "synchronous": synchronous_of(db)}


async def tether_cpu_breakdown(work: Path, synchronous: str, steps: int = CPU_STEPS,
                               repeats: int = CPU_REPEATS) -> dict[str, float]:
    """Where a step's CPU goes: inside `write_batch` (SQL, commit, fsync; on whichever thread
    commits) vs everything else (agent, ctx, journal bookkeeping, hand-offs)."""
    store = DiagStore(work / f"cpu-{synchronous}.db", synchronous)
    client = Tether(store)
    await client.run(cycle_agent, {"steps": 20, "size": 0})
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
    data = json.dumps(message("a", 0, 0)).encode()
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


# -- report -----------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "?"
    return {"nproc": str(os.cpu_count()), "cpu": model, "mem": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "commit": commit,
            "tether": metadata.version("tether")}


def fs_of(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def report(res: dict[str, Any], m: dict[str, str], work: Path, total_s: float) -> str:
    out: list[str] = []
    w = out.append
    lgv = next((r["lg"]["versions"] for r in res.values() if "lg" in r), {})
    w("## Core runtime vs LangGraph (`bench_core.py`)\n")
    w(f"Reproduce: `{COMMAND}` — it creates `.venv` and the LangGraph-only venv "
      "`benchmarks/.lg-venv`, then runs `.venv/bin/python benchmarks/bench_core.py`; LangGraph's "
      "side runs in the same invocation, as a subprocess "
      "(`benchmarks/.lg-venv/bin/python benchmarks/lg_side.py BENCH PARAMS`), one system after "
      f"the other on the same machine and filesystem. Whole run: {total_s:.0f} s.\n")
    w(f"- Machine: nproc {m['nproc']}, CPU `{m['cpu']}` (from /proc/cpuinfo), {m['mem']} RAM, "
      f"Linux {m['kernel']}; databases in a temporary directory on {fs_of(work)}.")
    w(f"- Tether {m['tether']} (commit {m['commit']}), Python {m['python']}, SQLite "
      f"{m['sqlite']}. LangGraph {lgv.get('langgraph', '?')}, langgraph-checkpoint "
      f"{lgv.get('langgraph-checkpoint', '?')}, langgraph-checkpoint-sqlite "
      f"{lgv.get('langgraph-checkpoint-sqlite', '?')}, aiosqlite {lgv.get('aiosqlite', '?')} "
      "(same Python, same SQLite library).")
    w("- Equal durability: both use SQLite in WAL mode with `PRAGMA synchronous=FULL` (2; every "
      "commit is fsynced; checked on both sides); LangGraph runs every invoke with "
      "`durability=\"sync\"` (a step's checkpoint is committed before the next step starts); "
      "Tether's `ctx.step` makes `step_started` durable before the step function runs. Messages "
      "are plain dicts (`{\"role\", \"content\"}`, same bytes on both sides); LangGraph's state "
      "is `Annotated[list, operator.add]`.")
    conds = ", ".join(
        f"{b} {c['conditions']['load1']:.1f} / {c['conditions']['fsync_p50_ms']:.2f} ms / "
        f"{c['conditions']['fsync_cpu_us']:.0f} µs" for b, c in res.items())
    w("- Machine load when each benchmark started (1-min load average / p50 latency of a 4 KB "
      f"write+fsync / CPU per write+fsync): {conds}. The machine is shared: wall-clock figures "
      "(benchmarks 3 and 4) move with the load; CPU figures much less.")
    w(f"- Run at {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.\n")

    rows: list[tuple[str, ...]] = []
    if "cpu" in res:
        t, g = res["cpu"]["tether"], res["cpu"]["lg"]
        ratio = t["cpu_per_step_ms"] / g["cpu_per_step_ms"]
        rows.append(("1. CPU per durable step (2-node cycle, 500 steps)",
                     f"{t['cpu_per_step_ms'] * 1000:.0f} µs",
                     f"{g['cpu_per_step_ms'] * 1000:.0f} µs",
                     f"Tether = 1/{1 / ratio:.1f} of LG", "≤ 1/10 of LG", verdict(ratio <= 0.1)))
        if "kb" in res["cpu"]:
            tk, gk = res["cpu"]["kb"]["tether"], res["cpu"]["kb"]["lg"]
            rk = tk["cpu_per_step_ms"] / gk["cpu_per_step_ms"]
            rows.append(("1b. the same, 1 KB messages (as in benchmark 2)",
                         f"{tk['cpu_per_step_ms'] * 1000:.0f} µs",
                         f"{gk['cpu_per_step_ms'] * 1000:.0f} µs",
                         f"Tether = 1/{1 / rk:.1f} of LG", "≤ 1/10 of LG", verdict(rk <= 0.1)))
    if "storage" in res:
        t, g = res["storage"]["tether"]["bytes"], res["storage"]["lg"]["bytes"]
        first, last = str(STORAGE_STEPS[0]), str(STORAGE_STEPS[-1])
        linear = t[last] / t[first] <= 1.25 * int(last) / int(first)
        rows.append((f"2. storage after {last} steps, 1 KB messages", mb(t[last]), mb(g[last]),
                     f"LG = {g[last] / t[last]:.0f}x Tether",
                     "linear, ≤ 2 MB at 800",
                     verdict(t[last] <= 2e6 and linear)
                     + ("" if t[last] <= 2e6 else " (linear, but over 2 MB)")))
    if "throughput" in res:
        rounds = res["throughput"]["rounds"]
        ratios = [r["tether"]["batched"]["steps_per_s"] / r["lg"]["steps_per_s"]
                  for r in rounds]
        met = sum(x >= 10 for x in ratios)
        rows.append(("3. steps/s, 1,000 concurrent runs x 10 steps, 50 ms model call, runs "
                     f"queued with `submit_many` ({len(rounds)} rounds)",
                     " / ".join(f"{r['tether']['batched']['steps_per_s']:,.0f}" for r in rounds),
                     " / ".join(f"{r['lg']['steps_per_s']:,.0f}" for r in rounds),
                     " / ".join(f"{x:.1f}x" for x in ratios), "≥ 10x LG",
                     verdict(met == len(rounds)) + (
                         f" (met in {met} of {len(rounds)} rounds)"
                         if 0 < met < len(rounds) else "")))
    if "resume" in res:
        t, g = res["resume"]["tether"], res["resume"]["lg"]
        rows.append((f"4. resume, {t['journal_events']:,}-event journal, p50",
                     f"{t['p50_ms']:.1f} ms", f"{g['p50_ms']:.1f} ms",
                     f"Tether = {t['p50_ms'] / g['p50_ms']:.1f}x LG", "≤ 50 ms",
                     verdict(t["p50_ms"] <= 50)))
    w("| benchmark | Tether | LangGraph 1.2 | ratio | target | verdict |")
    w("|---|---|---|---|---|---|")
    for r in rows:
        w("| " + " | ".join(r) + " |")
    w("")

    if "cpu" in res:
        t, g = res["cpu"]["tether"], res["cpu"]["lg"]
        ratio = t["cpu_per_step_ms"] / g["cpu_per_step_ms"]
        w("### 1. CPU per durable step\n")
        w(f"A 2-node cycle a ⇄ b, each node appending one short message (`{{\"role\": "
          f"\"assistant\", \"content\": \"node a, step 0\"}}`), {t['steps']} node executions. "
          "CPU = `time.process_time()` (every thread of the process: Tether's committer thread, "
          "SQLite, the system time of the fsyncs) over the whole run including its submission, "
          f"divided by the node executions; median of {len(t['cpu_s'])} runs after a 20-step "
          "warm-up. LangGraph: `graph.invoke(..., durability=\"sync\")` with `SqliteSaver` (the "
          "sync API, its cheapest path). Tether: `cycle_agent`, one `ctx.step` per node (async "
          "step function, returns the new message), driven by `Tether.run` (one in-process "
          "worker).\n")
        w("| | CPU per step | wall per step | CPU per 500-step run (each repeat) |")
        w("|---|---|---|---|")
        for who, d in (("Tether", t), ("LangGraph", g)):
            w(f"| {who} | {d['cpu_per_step_ms'] * 1000:.0f} µs | "
              f"{d['wall_per_step_ms'] * 1000:.0f} µs | "
              + ", ".join(f"{x:.3f} s" for x in d["cpu_s"]) + " |")
        w(f"\nTether uses 1/{1 / ratio:.1f} of LangGraph's CPU per step; target ≤ 1/10: "
          f"{verdict(ratio <= 0.1)}" + ("" if ratio <= 0.1 else
          f" (Tether would need ≤ {g['cpu_per_step_ms'] * 100:.0f} µs per step)") +
          f". Tether's journal for one run: {t['events_per_run']:,} events.\n")
        b, gn = res["cpu"]["breakdown"], res["cpu"]["lg_normal"]
        w("Where the CPU goes (same runs repeated with `PRAGMA synchronous=NORMAL` — no fsync "
          "per commit — to separate the fsync from the rest; diagnosis only, not the "
          "benchmark's durability):\n")
        w("| | per step, total | inside `write_batch` (SQL, commit, fsync) | everything else "
          "(agent, ctx, bookkeeping, hand-offs) | commits per step | committed inline |")
        w("|---|---|---|---|---|---|")
        for sync in ("FULL", "NORMAL"):
            d = b[sync]
            w(f"| Tether, synchronous={sync} | {d['total_us']:.0f} µs | {d['commit_us']:.0f} µs | "
              f"{d['rest_us']:.0f} µs | {d['commits_per_step']:.2f} | "
              f"{d['inline_share']:.0%} |")
        fl = res["cpu"]["floor"]
        for sync in ("FULL", "NORMAL"):
            w(f"| bare sqlite3 loop, synchronous={sync} (no runtime: the same two event rows "
              f"and lease lookup per commit) | {fl[sync]:.0f} µs | {fl[sync]:.0f} µs | 0 | 1 | |")
        w(f"| LangGraph, synchronous=FULL | {g['cpu_per_step_ms'] * 1000:.0f} µs | | | 2 "
          "(`put` + `put_writes`) | |")
        w(f"| LangGraph, synchronous=NORMAL | {gn['cpu_per_step_ms'] * 1000:.0f} µs | | | 2 | |")
        fs = res["cpu"]["conditions"]["fsync_cpu_us"]
        need = g["cpu_per_step_ms"] * 100
        w(f"\nOne 4 KB write+fsync costs this process {fs:.0f} µs of CPU on this machine (probe "
          "above). At equal durability a sequential run needs at least one fsynced commit per "
          "step (Tether has exactly one: `step_completed` of step N rides in the same op as "
          "`step_started` of step N+1, and a run alone on its worker commits on its own thread, "
          "with no hand-off to the committer thread). The bare sqlite3 loop above is the floor "
          f"for any SQLite journal with that guarantee: {fl['FULL']:.0f} µs per step at "
          f"synchronous=FULL, against a 1/10 budget of {need:.0f} µs"
          + (" — the budget lies below the floor, so no SQLite-backed runtime can meet it on "
             "this machine with "
             "these short messages; " if fl["FULL"] > need else "; ")
          + f"Tether spends {b['FULL']['total_us'] - fl['FULL']:.0f} µs per step above it.\n")
    if "storage" in res:
        st = res["storage"]["tether"]
        t, g = st["bytes"], res["storage"]["lg"]["bytes"]
        w("### 2. Storage growth\n")
        w(f"The same cycle with {STORAGE_MSG}-character message contents (~1.06 KB of JSON per "
          "message), one fresh database per length; size = database file + WAL after "
          "`PRAGMA wal_checkpoint(TRUNCATE)`.\n")
        w("| steps | Tether | LangGraph | LG / Tether | Tether bytes per step |")
        w("|---|---|---|---|---|")
        for n in STORAGE_STEPS:
            k = str(n)
            w(f"| {n} | {mb(t[k])} | {mb(g[k])} | {g[k] / t[k]:.0f}x | {t[k] / n:,.0f} |")
        first, last = str(STORAGE_STEPS[0]), str(STORAGE_STEPS[-1])
        w(f"\nFrom {first} to {last} steps ({int(last) // int(first)}x the work) Tether grows "
          f"{t[last] / t[first]:.1f}x (linear) and LangGraph {g[last] / g[first]:.1f}x "
          "(quadratic: it stores the whole message list again at every step). Target ≤ 2 MB at "
          f"800 steps: {verdict(t[last] <= 2e6)} ({mb(t[last])}).\n")
        if st.get("page_size"):
            w(f"Tether's {last}-step file by SQLite page type (`dbstat`, page size "
              f"{st['page_size']} B):\n")
            w("| table / page type | pages | payload | unused |")
            w("|---|---|---|---|")
            small = [d for name, d in st["dbstat"].items() if not name.startswith("events/")]
            for name, d in sorted(st["dbstat"].items()):
                if name.startswith("events/"):
                    w(f"| {name} | {d['pages']:,} | {mb(d['payload'] or 0)} | "
                      f"{mb(d['unused'] or 0)} |")
            w(f"| {len(small)} other tables and indexes | {sum(d['pages'] for d in small):,} | "
              f"{mb(sum(d['payload'] or 0 for d in small))} | "
              f"{mb(sum(d['unused'] or 0 for d in small))} |")
            over = st["dbstat"].get("events/overflow")
            if over and over["pages"]:
                w(f"\n{over['pages']:,} overflow pages for {last} steps: every message of ~1 KB "
                  "leaves the `events` B-tree for an overflow page of its own, "
                  f"{over['unused'] / over['pages'] / st['page_size']:.0%} of which is empty.")
            w("")
    if "throughput" in res:
        rounds = res["throughput"]["rounds"]
        t, g = rounds[0]["tether"], rounds[0]["lg"]
        n = t["runs"] * t["steps"]
        w("### 3. Concurrent throughput\n")
        w(f"{t['runs']:,} runs x {t['steps']} steps; each step awaits `asyncio.sleep(0.05)` (the "
          "simulated model call) inside the durable step and appends one message. LangGraph: "
          f"{g['runs']:,} concurrent `ainvoke`s of one compiled graph with `AsyncSqliteSaver`, "
          "`durability=\"sync\"`, timed from the first `ainvoke` to the last result. Tether: the "
          "runs submitted with `Tether.submit`, then driven by one in-process "
          f"`Worker(concurrency={t['runs']})`, timed from the first submit to the last run "
          "finished; every step's `step_started` is durable before its model call. Lower bound "
          f"for either: 10 x 50 ms = 0.5 s. {len(rounds)} rounds, each Tether then LangGraph "
          "(wall-clock figures follow the machine's fsync latency, which the shared machine "
          "varies a lot; the CPU columns do not).\n")
        w("| round | | wall | steps/s | CPU | CPU per step |")
        w("|---|---|---|---|---|---|")
        for i, r in enumerate(rounds, 1):
            t, g = r["tether"], r["lg"]
            tb = t["batched"]
            w(f"| {i} | **Tether** (submit + execute) | {t['wall_s']:.2f} s | "
              f"**{t['steps_per_s']:,.0f}** | {t['cpu_s']:.2f} s | "
              f"{t['cpu_s'] / n * 1e6:.0f} µs |")
            w(f"| {i} | — of which submitting (`Tether.submit`, one transaction per run) | "
              f"{t['submit_s']:.2f} s | | | |")
            w(f"| {i} | — of which executing | {t['execute_s']:.2f} s | "
              f"{t['steps_per_s_execute_only']:,.0f} | | |")
            w(f"| {i} | **Tether**, runs queued with `Tether.submit_many` (one transaction) "
              f"+ execute — the headline | {tb['wall_s']:.2f} s | "
              f"{tb['steps_per_s']:,.0f} | {tb['cpu_s']:.2f} s | "
              f"{tb['cpu_s'] / n * 1e6:.0f} µs |")
            w(f"| {i} | **LangGraph** | {g['wall_s']:.2f} s | **{g['steps_per_s']:,.0f}** | "
              f"{g['cpu_s']:.2f} s | {g['cpu_s'] / n * 1e6:.0f} µs |")
        w("")
        for i, r in enumerate(rounds, 1):
            t, g = r["tether"], r["lg"]
            ratio = t["steps_per_s"] / g["steps_per_s"]
            c0, c1 = r["conditions"], r["conditions_after"]
            batched = t["batched"]["steps_per_s"] / g["steps_per_s"]
            w(f"- Round {i}: Tether (`submit_many`)/LangGraph = {batched:.1f}x end to end, "
              f"target ≥ 10x: {verdict(batched >= 10)}. With one `submit` per run: "
              f"{ratio:.1f}x; execution alone: "
              f"{t['steps_per_s_execute_only'] / g['steps_per_s']:.1f}x; CPU per step: "
              f"Tether uses 1/{g['cpu_s'] / t['cpu_s']:.0f} of LangGraph's. Machine during the "
              f"round (before → after): load {c0['load1']:.1f} → {c1['load1']:.1f}, 4 KB "
              f"write+fsync p50 {c0['fsync_p50_ms']:.2f} → {c1['fsync_p50_ms']:.2f} ms.")
        t, g = rounds[0]["tether"], rounds[0]["lg"]
        w(f"\nGroup commit (round 1, execution phase): {t['events']:,} journal events and "
          f"{t['ops']:,} write operations (event appends, claims, lease renewals, run "
          f"completions) in {t['transactions']:,} transactions — "
          f"{t['events'] / t['transactions']:.0f} events, {t['ops'] / t['transactions']:.0f} "
          f"operations per transaction: {t['transactions']:,} fsyncs instead of {t['ops']:,} "
          f"({t['ops'] - t['transactions']:,} saved, {t['ops'] / t['transactions']:.0f}x "
          f"fewer). Those commits took {t['commit_wall_s']:.2f} s of wall time but only "
          f"{t['commit_cpu_s']:.2f} s of CPU: execution waits on the disk's fsync latency, not "
          f"on the CPU. LangGraph wrote {g['checkpoint_rows']:,} checkpoint rows and "
          f"{g['write_rows']:,} pending-write rows, each `aput`/`aput_writes` in its own "
          "committed transaction, one after the other on its single connection.\n")
    if "resume" in res:
        t, g = res["resume"]["tether"], res["resume"]["lg"]
        w("### 4. Resume\n")
        w(f"A run of {t['steps']} cycle steps (short messages) then `ctx.wait_for(\"go\")`: it "
          f"waits as a row with a {t['journal_events']:,}-event journal. A signal makes it "
          "runnable; measured from the moment the worker's claim transaction returns the run to "
          "the moment the agent has replayed all its steps and is live again (run row and "
          "journal loaded, context built, agent re-executed from the top with every step "
          f"answered from the journal). p50 of {len(t['claim_to_live_s'])} runs after one "
          f"warm-up. LangGraph: the same cycle compiled with `interrupt_before=[\"c\"]`, "
          f"{g['steps']} node executions ({g['checkpoints_per_thread']} checkpoints per thread); "
          "resume = a fresh `SqliteSaver` connection and graph, `invoke(None, config, "
          "durability=\"sync\")`, measured to the first instruction of node c; p50 of "
          f"{len(g['times_s'])} threads after one warm-up.\n")
        w("| | p50 | each | notes |")
        w("|---|---|---|---|")
        w(f"| Tether, claim → live | {t['p50_ms']:.1f} ms | "
          + ", ".join(f"{x * 1000:.1f}" for x in t["claim_to_live_s"])
          + f" ms | loading the journal alone: {t['load_events_p50_ms']:.1f} ms; signal → live "
          f"(adds the signal write, the wake-up and the claim transaction): "
          f"{t['signal_to_live_p50_ms']:.1f} ms |")
        w(f"| LangGraph, invoke → node c | {g['p50_ms']:.1f} ms | "
          + ", ".join(f"{x * 1000:.1f}" for x in g["times_s"])
          + " ms | loads only the latest checkpoint (the whole state); replays nothing |")
        w(f"\nTarget ≤ 50 ms: {verdict(t['p50_ms'] <= 50)}. LangGraph resumes faster because it "
          "restores a snapshot instead of replaying; the price is benchmark 2's quadratic "
          "storage.\n")
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------------
TETHER = {"cpu": tether_cpu, "storage": tether_storage, "throughput": tether_throughput,
          "resume": tether_resume}


def lg_params(bench: str, work: Path) -> dict[str, Any]:
    d = str(work)
    return {
        "cpu": {"dir": d, "steps": CPU_STEPS, "size": 0, "repeats": CPU_REPEATS},
        "storage": {"dir": d, "steps": STORAGE_STEPS, "size": STORAGE_MSG},
        "throughput": {"dir": d, "runs": TP_RUNS, "steps": TP_STEPS, "size": 0,
                       "sleep": TP_SLEEP},
        "resume": {"dir": d, "steps": RESUME_STEPS, "size": 0, "repeats": RESUME_REPEATS},
    }[bench]


def profile(bench: str) -> None:
    """Tether's side only: CPU profile of the event-loop thread (cProfile with a thread-CPU
    clock, so waiting is not counted) and, for `cpu`, the per-thread breakdown with and without
    the fsync. The committer thread's share shows up in the breakdown, not in the profile."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        if bench == "cpu":
            for sync in ("FULL", "NORMAL"):
                print(sync, json.dumps(asyncio.run(tether_cpu_breakdown(Path(tmp), sync))))
        prof = cProfile.Profile(time.thread_time)
        prof.enable()
        result = asyncio.run(TETHER[bench](Path(tmp)))
        prof.disable()
    print(json.dumps(result, indent=1, default=str))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime")
    stats.print_stats(35)
    stats.sort_stats("cumulative").print_stats(45)
    print(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="cpu,storage,throughput,resume")
    ap.add_argument("--profile", choices=sorted(TETHER))
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return
    benches = [b.strip() for b in args.only.split(",") if b.strip()]
    full = benches == list(TETHER)
    start = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        work = Path(tmp)
        for bench in benches:
            t0 = time.perf_counter()
            (work / bench).mkdir()
            cond = conditions(work / bench)
            rounds = []
            for r in range(ROUNDS.get(bench, 1)):  # each round: Tether, then LangGraph
                (where := work / bench / f"round{r}").mkdir()
                probe = cond if r == 0 else conditions(where)
                tether = asyncio.run(TETHER[bench](where))
                lang = lg(bench, lg_params(bench, where))
                rounds.append({"tether": tether, "lg": lang, "conditions": probe,
                               "conditions_after": conditions(where)})
            results[bench] = {**rounds[0], "rounds": rounds, "conditions": cond}
            if bench == "cpu":  # diagnosis: the same run with and without the fsync
                results[bench]["breakdown"] = {
                    sync: asyncio.run(tether_cpu_breakdown(work / bench, sync))
                    for sync in ("FULL", "NORMAL")}
                results[bench]["lg_normal"] = lg(bench, {**lg_params(bench, work / bench),
                                                         "synchronous": "NORMAL"})
                results[bench]["floor"] = {sync: sqlite_floor(work / bench, sync)
                                           for sync in ("FULL", "NORMAL")}
                # the same cycle with the storage benchmark's 1 KB messages: LangGraph's cost
                # per step grows with its state, Tether's does not
                (kb := work / bench / "kb").mkdir()
                results[bench]["kb"] = {
                    "tether": asyncio.run(tether_cpu(kb, size=STORAGE_MSG)),
                    "lg": lg(bench, {**lg_params(bench, kb), "size": STORAGE_MSG})}
            print(f"[{bench}] {time.perf_counter() - t0:.1f} s\n  tether: "
                  f"{json.dumps(tether, default=str)[:600]}\n  langgraph: "
                  f"{json.dumps(lang, default=str)[:600]}", file=sys.stderr, flush=True)
        text = report(results, machine(), work, time.perf_counter() - start)
    if full:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(text + "\n")
        print(f"wrote {RESULT.relative_to(ROOT)}", file=sys.stderr)
    print(text)


if __name__ == "__main__":
    main()
