"""Tether vs DBOS Transact on one PostgreSQL (issue 18): 1,000 concurrent workflows x 10 steps.

    make bench-dbos          # .venv, the DBOS-only venv .tether/dbos-venv, PostgreSQL; then this
    .venv/bin/python benchmarks/bench_dbos.py [--runs 1000] [--steps 10] [--rounds 3]

Same server (`make postgres`, 127.0.0.1:55432), a fresh database per system and round
(`tether_bench`, `dbos_bench`), PostgreSQL's default `synchronous_commit=on` for both. Rounds
interleave Tether on PostgreSQL, DBOS, Tether on SQLite (synchronous=FULL), rotating the order.
Then Tether with 1, 2 and 4 worker processes on each store. Target: Tether >= 3x DBOS's steps/s.
Writes benchmarks/results/dbos.md (see benchmarks/scale/versus.py for what is timed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import the parts as `benchmarks.*`

from benchmarks.core.probes import conditions, machine  # noqa: E402
from benchmarks.scale import versus  # noqa: E402
from benchmarks.scale.dbs import fresh  # noqa: E402
from benchmarks.scale.machine import arguments, machine_facts, session, versions  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "dbos.md"
SLEEP = 0.05
SYSTEMS = ["tether-postgres", "dbos", "tether-sqlite"]


def one(system: str, work: Path, runs: int, steps: int) -> dict[str, Any]:
    if system == "dbos":
        return versus.dbos(fresh("postgres", "dbos_bench", work), runs, steps, SLEEP)
    kind = system.split("-")[1]
    url = fresh(kind, "tether_bench", work)
    return asyncio.run(versus.tether_in_process(url, runs, steps, SLEEP))


def run(work: Path, runs: int, steps: int, rounds: int,
        worker_counts: list[int]) -> dict[str, Any]:
    side: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    for r in range(rounds):
        order = SYSTEMS[r % 3:] + SYSTEMS[:r % 3]
        for system in order:
            result = one(system, work, runs, steps)
            result["load1"] = conditions(work, 20)["load1"]
            result.setdefault("server_cpu_per_step_us", 0.0)
            result["total_cpu_per_step_us"] = (result["cpu_per_step_us"]
                                               + result["server_cpu_per_step_us"])
            side[system].append(result)
            print(f"round {r + 1} {system}: {result['steps_per_s']:.0f} steps/s, "
                  f"{result['cpu_per_step_us']:.0f} µs CPU/step, load {result['load1']:.1f}",
                  flush=True)
    workers: list[dict[str, Any]] = []
    for n in worker_counts:
        for kind in ("postgres", "sqlite"):
            url = fresh(kind, f"tether_bench_w{n}", work)
            result = versus.tether_workers(url, n, runs, steps, SLEEP)
            result["store"] = kind
            workers.append(result)
            print(f"{kind} x{n} workers: {result['steps_per_s']:.0f} steps/s, "
                  f"{result['cpu_per_step_us']:.0f} µs CPU/step, load {result['load1']:.1f}",
                  flush=True)
    return {"side": side, "workers": workers}


def med(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def report(res: dict[str, Any], m: dict[str, str], cond: dict[str, float], runs: int,
           steps: int, rounds: int, total_s: float, uptimes: list[str], argv: str) -> str:
    side = res["side"]
    out: list[str] = []
    w = out.append
    dv = side["dbos"][0].get("dbos", "?") if side["dbos"] else "?"
    w("## Tether vs DBOS Transact on PostgreSQL (`bench_dbos.py`)\n")
    w(f"Reproduce: `make bench-dbos` (runs `.venv/bin/python benchmarks/bench_dbos.py{argv}`; "
      "DBOS's side is `.tether/dbos-venv/bin/python benchmarks/dbos_side.py`, a subprocess of "
      f"the same invocation). Whole run: {total_s:.0f} s, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
      "UTC.\n")
    w(f"- {machine_facts(m, cond, uptimes)}")
    w(f"- {versions(m)}; "
      f"DBOS Transact {dv} (PyPI, its own venv). One PostgreSQL server (Debian's, `make "
      "postgres`), a fresh database per system and round, `synchronous_commit=on` (the default) "
      "for both; Tether's SQLite at `synchronous=FULL`.")
    w(f"- Workload: {runs:,} workflows started at once x {steps} durable steps, each step a "
      f"{SLEEP * 1000:.0f} ms simulated model call returning the same small dict on both sides "
      "(DBOS: async `@DBOS.workflow` / `@DBOS.step`, `DBOS.start_workflow_async`; Tether: "
      "`submit_many` + one worker with concurrency = runs). Timed from the first start to the "
      "last result, one warm-up workflow first; CPU = the process's CPU seconds (all threads; "
      "plus the CPU of the PostgreSQL backends serving its database, read from /proc; the "
      "server's shared WAL writer and checkpointer are left out on both sides). "
      f"{rounds} interleaved rounds, order rotated each round; medians.\n")
    w("| system | steps/s (median) | CPU per durable step: process | + PostgreSQL backends | "
      "= total | rounds (steps/s) | load1 |")
    w("|---|---|---|---|---|---|---|")
    for system in SYSTEMS:
        rows = side[system]
        if not rows:
            continue
        each = ", ".join(f"{r['steps_per_s']:,.0f}" for r in rows)
        loads = ", ".join(f"{r['load1']:.1f}" for r in rows)
        proc, server = med(rows, "cpu_per_step_us"), med(rows, "server_cpu_per_step_us")
        w(f"| {system} | {med(rows, 'steps_per_s'):,.0f} | {proc:,.0f} µs | {server:,.0f} µs | "
          f"{med(rows, 'total_cpu_per_step_us'):,.0f} µs | {each} | {loads} |")
    if side["dbos"] and side["tether-postgres"]:
        pairs = [t["steps_per_s"] / d["steps_per_s"]
                 for t, d in zip(side["tether-postgres"], side["dbos"], strict=False)]
        cpu = [d["total_cpu_per_step_us"] / t["total_cpu_per_step_us"]
               for t, d in zip(side["tether-postgres"], side["dbos"], strict=False)]
        ratio = statistics.median(pairs)
        w(f"\nTether/DBOS steps/s, per round: {', '.join(f'{p:.1f}x' for p in pairs)}; median "
          f"**{ratio:.1f}x** (target >= 3x: **{'met' if ratio >= 3 else 'MISSED'}**). DBOS "
          f"spends {statistics.median(cpu):.1f}x Tether's CPU per durable step, process and "
          "PostgreSQL backends together (median of rounds).")
    if side["tether-sqlite"] and side["tether-postgres"]:
        lite, pg = med(side["tether-sqlite"], "steps_per_s"), med(side["tether-postgres"],
                                                                    "steps_per_s")
        w(f"Tether SQLite/PostgreSQL steps/s: {lite / pg:.2f}x.")
    w("\n### Tether with 1, 2 and 4 worker processes\n")
    w(f"{runs:,} runs x {steps} steps submitted by the driver to worker processes already "
      "serving (concurrency = runs / workers each, so each can take its share), timed to the "
      "last run finished; CPU = the workers' "
      "own CPU seconds (summed) per step. One run per row, stores interleaved.\n")
    w("| store | workers | steps/s | CPU per step: workers | + PostgreSQL backends | "
      "steps per worker | peak RSS per worker | load1 |")
    w("|---|---|---|---|---|---|---|---|")
    for r in res["workers"]:
        w(f"| {r['store']} | {r['workers']} | {r['steps_per_s']:,.0f} | "
          f"{r['cpu_per_step_us']:,.0f} µs | {r['server_cpu_per_step_us']:,.0f} µs | "
          f"{', '.join(map(str, r['per_worker_steps']))} | "
          f"{', '.join(f'{x:.0f}' for x in r['peak_rss_mb'])} MB | {r['load1']:.1f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    with session("bench-dbos-") as s:
        res = run(s.work, args.runs, args.steps, args.rounds,
                  [int(x) for x in args.workers.split(",") if x])
    text = report(res, machine(), s.cond, args.runs, args.steps, args.rounds, s.total_s,
                  s.uptimes, arguments())
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
