"""Two `tether worker` processes on one database with a short lease (0.3 s), one of them frozen
at random (SIGSTOP for 1-800 ms, SIGCONT, again after 0-100 ms) while they execute 50 multi-step
runs (steps not safe to repeat, idempotent steps, a gather, a short and a durable timer), each
step not safe to repeat recording every execution of it in a file.

Checks, on SQLite and PostgreSQL: every run ends succeeded with the right result; every step not
safe to repeat executed exactly once, and never after the journal recorded it complete (the file
against the journals). A step in flight when its worker's lease expired is "in doubt"
(docs/architecture.md): the run waits for `resolve`, which the test gives as a careful human
would, from the file, only while nothing is frozen and after a grace period (a frozen worker's
step thread acts when it wakes up). How often that happens is printed, not asserted.

Why: a stalled worker (a loaded host, a paused VM, a profiler) lets its leases expire, and its
heartbeat, polls and commits then fire in orders a quiet machine never shows, while the other
worker takes its runs over (test_mcp_frozen.py uses the same technique on an MCP server). The
pause between freezes is up to 100 ms here, not 20: at 20 the frozen worker is stopped 96% of
the time and the other one does all the work, so that runs are seldom taken over. Each worker
executes at most 4 runs at once, so the one not frozen leaves work to the other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.freezer import Freezer
from tether import Context, Tether
from tether.runtime import NotInDoubt
from tether.store import TERMINAL_STATUSES

REPO = Path(__file__).resolve().parents[2]
AGENT = "tests.runtime.test_worker_frozen:trial"
EFFECTS_ENV = "TETHER_TEST_EFFECTS"
RUNS = 50
STEP_S = float(os.environ.get("TETHER_TEST_STEP_S", "0.02"))  # before and after the effect
RECORDED = ("a", "c", "d", "e", "f")  # the steps not safe to repeat


# -- the agent (imported by the worker processes) ----------------------------------------------
def _record(run_id: str, step: str, value: int) -> int:
    """Not safe to repeat: appends one line per execution (one write(2), atomic)."""
    time.sleep(STEP_S)
    out = value * 3 % 1009
    line = json.dumps({"run": run_id, "step": step, "pid": os.getpid(), "t": time.time(),
                       "out": out})
    fd = os.open(os.environ[EFFECTS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    time.sleep(STEP_S)
    return out


def _plus(value: int, idempotency_key: str) -> int:
    time.sleep(0.002)
    return value + 1


async def trial(ctx: Context, n: int) -> int:
    a = await ctx.step("a", _record, ctx.run_id, "a", n)
    b = await ctx.step("b", _plus, a, idempotent=True)
    await ctx.sleep(0.01)  # in the worker
    await ctx.sleep(1.1)  # durable: the run waits, then either worker claims it
    c = await ctx.step("c", _record, ctx.run_id, "c", b)
    d, e = await ctx.gather(ctx.step("d", _record, ctx.run_id, "d", c),
                            ctx.step("e", _record, ctx.run_id, "e", c + 1))
    g = await ctx.step("g", _plus, d + e, idempotent=True)
    return int(await ctx.step("f", _record, ctx.run_id, "f", g))


def expected(n: int) -> int:
    def rec(v: int) -> int:
        return v * 3 % 1009

    c = rec(rec(n) + 1)
    return rec(rec(c) + rec(c + 1) + 1)


# -- the harness ----------------------------------------------------------------------------
def _effects(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            found.setdefault((entry["run"], entry["step"]), []).append(entry)
    return found


def _worker(db: str, effects: Path, lease: float, concurrency: int, err: Path
            ) -> subprocess.Popen[bytes]:
    """`tether worker`, once it says it serves."""
    env = {**os.environ, EFFECTS_ENV: str(effects)}
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "tether"), "worker", "--db", db,
             "--lease-ttl", str(lease), "--poll", "0.05", "--concurrency", str(concurrency)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=fh)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert b"serving" in line, (line, err.read_text())
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # never blocks on a pipe
    return proc


def run_frozen(tmp: Path, db: str, *, lease: float = 0.3, runs: int = RUNS, seed: int = 5,
               in_flight: int = 12, concurrency: int = 4, gap: float = 0.1,
               frozen: int = 1, time_limit: float = 60.0) -> dict[str, Any]:
    """Queue `runs` trials (`in_flight` at a time), start two workers (each executing at most
    `concurrency` runs), freeze the first `frozen` of them at random, act as the human on
    in-doubt steps; return what happened (and what is wrong, under "wrong")."""
    effects = tmp / "effects.jsonl"
    t = Tether(db)
    procs = [_worker(db, effects, lease, concurrency, tmp / f"worker-{i}.err")
             for i in range(2)]
    ids: dict[str, int] = {}
    wrong: list[str] = []
    decisions: list[tuple[str, str, str]] = []
    in_doubt = 0
    try:
        with contextlib.ExitStack() as stack:
            freezers = [stack.enter_context(Freezer(p.pid, seed + i, gap))
                        for i, p in enumerate(procs[:frozen])]
            deadline = time.monotonic() + time_limit
            while True:
                done = [r for r in t.runs(limit=10_000) if r.status in TERMINAL_STATUSES]
                if len(done) == runs:
                    break
                while len(ids) < runs and len(ids) - len(done) < in_flight:
                    n = len(ids)
                    ids[t.submit(AGENT, n)] = n
                if time.monotonic() > deadline:
                    wrong.append(f"only {len(done)} of {runs} runs ended in {time_limit}s")
                    break
                for p in procs:
                    if p.poll() is not None:
                        wrong.append(f"worker {p.pid} exited with {p.returncode}")
                if wrong:
                    break
                doubtful = [r for r in t.runs(status="waiting", limit=10_000)
                            if r.options.get("in_doubt")]
                if doubtful:
                    with contextlib.ExitStack() as held:  # nothing frozen: started steps end
                        for f in freezers:
                            held.enter_context(f.held())
                        time.sleep(max(0.2, lease))
                        seen = _effects(effects)
                        for run in doubtful:
                            key, step = (run.options["in_doubt"]["key"],
                                         run.options["in_doubt"]["step"])
                            got = seen.get((run.id, step), [])
                            action = "skip" if got else "retry"
                            try:
                                t.resolve(run.id, action, result=got[0]["out"] if got else None,
                                          key=key)
                            except NotInDoubt:
                                continue
                            in_doubt += 1
                            decisions.append((run.id, step, action))
                time.sleep(0.05)
            freezes = sum(f.freezes for f in freezers)
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                wrong.append(f"worker {p.pid} ignored SIGTERM")
    seen = _effects(effects)
    attempts: Counter[int] = Counter()
    for run_id, n in ids.items():
        run = t.get(run_id)
        attempts[run.attempts] += 1
        if run.status != "succeeded" or run.result != expected(n):
            wrong.append(f"run {run_id} (n={n}): {run.status} {run.result!r} (want "
                         f"{expected(n)}) {run.error or ''} {run.reason or ''}")
        events = t.events(run_id)
        for step in RECORDED:
            done_at = [e.ts for e in events if e.kind == "step_completed" and e.name == step]
            got = seen.get((run_id, step), [])
            late = [g["t"] for g in got if done_at and g["t"] > done_at[0]]
            if len(got) != 1 or late:
                journal = [(e.seq, e.kind, e.key, round(e.ts, 3)) for e in events
                           if e.name == step]
                wrong.append(f"run {run_id} step {step}: executed {len(got)} times (pids "
                             f"{[g['pid'] for g in got]}, at {[round(g['t'], 3) for g in got]},"
                             f" {len(late)} after it was journaled complete); journal: "
                             f"{journal}; decisions: {[d for d in decisions if d[0] == run_id]}")
    errors = "".join(p.read_text() for p in sorted(tmp.glob("worker-*.err")))
    t.close()
    # two claims a run when nothing goes wrong: the first, and the one after its durable timer
    taken_over = sum(k * (a - 2) for a, k in attempts.items() if a > 2)
    return {"wrong": wrong, "freezes": freezes, "in_doubt": in_doubt, "decisions": decisions,
            "attempts": dict(attempts), "taken_over": taken_over, "worker_errors": errors}


def _check(got: dict[str, Any]) -> None:
    print({k: v for k, v in got.items() if k not in ("worker_errors", "decisions")})
    assert got["freezes"] > 20, f"only {got['freezes']} freezes: the test froze too little"
    assert got["wrong"] == [], "\n".join(got["wrong"][:10]) + got["worker_errors"][-3000:]
    assert "Traceback" not in got["worker_errors"], got["worker_errors"][-3000:]
    assert got["taken_over"] >= 2, f"runs were taken over {got['taken_over']} times: the " \
        "freezes hardly bit"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_workers_one_frozen_at_random_sqlite(tmp_path: Path) -> None:
    _check(run_frozen(tmp_path, str(tmp_path / "tether.db")))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_workers_one_frozen_at_random_postgres(tmp_path: Path) -> None:
    from tests.store.pg_support import PgSchema

    schema = PgSchema()
    try:
        _check(run_frozen(tmp_path, schema.url))
    finally:
        schema.drop()
