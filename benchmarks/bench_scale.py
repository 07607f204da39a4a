"""Concurrency growth (issue 18): Tether's steps/s and worker memory as in-flight runs grow.

    make bench-scale         # .venv and PostgreSQL (`make postgres`), then this
    .venv/bin/python benchmarks/bench_scale.py [--inflight 10000,50000,100000] [--workers 1,2,4]
        [--warm 3] [--measure 12] [--trace 15]

For each in-flight count N (outer), each store (SQLite synchronous=FULL, then PostgreSQL
synchronous_commit=on; one database per store, kept across N) and 1, 2, 4 worker processes (default
concurrency 256 each): top the store up to N unfinished runs (10 steps each, 50 ms simulated model
call per step), serve a measurement window, report steps/s (summed over workers) and each worker's
peak RSS. Targets: steps/s flat as N grows; <= 10 KB of worker memory per in-flight run. Then one
worker with concurrency 500 and 2,000 (memory per run it executes at once), and one worker with the
smallest N under tracemalloc: where its memory is. Writes
benchmarks/results/scale.md (see benchmarks/scale/growth.py for what is timed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import the parts as `benchmarks.*`

from benchmarks.core.probes import machine  # noqa: E402
from benchmarks.scale.dbs import fresh  # noqa: E402
from benchmarks.scale.growth import top_up, window  # noqa: E402
from benchmarks.scale.machine import arguments, machine_facts, session, versions  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "scale.md"
STORES = ["sqlite", "postgres"]
STEPS, SLEEP = 10, 0.05


def run(urls: dict[str, str], inflight: list[int], workers: list[int], warm: float,
        measure: float, trace: int, steps: int = STEPS, sleep: float = SLEEP,
        executing: tuple[int, ...] = ()) -> dict[str, Any]:
    """Every configuration, on one database per store (`urls`: store kind -> URL or path);
    then, for each `executing` count, one worker with that concurrency (what a run costs while a
    worker executes it, as opposed to waiting in the store)."""
    rows: list[dict[str, Any]] = []
    for n in inflight:
        for kind in urls:
            for w in workers:
                sub = top_up(urls[kind], n, steps, sleep)
                row = window(urls[kind], w, warm_s=warm, measure_s=measure)
                row.update(store=kind, target=n, **sub)
                rows.append(row)
                print(f"{kind} N={n:,} workers={w}: {row['steps_per_s']:,.0f} steps/s, "
                      f"{row['cpu_per_step_us']:.0f} µs CPU/step, peak RSS "
                      f"{row['peak_rss_mb']:.0f} MB (+{row['growth_mb']:.0f}), load "
                      f"{row['load1']:.1f}", flush=True)
    held: list[dict[str, Any]] = []
    for c in executing:
        for kind in urls:
            top_up(urls[kind], 2 * c, steps, sleep)
            row = window(urls[kind], 1, warm_s=warm, measure_s=measure, concurrency=c)
            row.update(store=kind, concurrency=c)
            held.append(row)
            print(f"{kind} concurrency={c}: {row['steps_per_s']:,.0f} steps/s, peak RSS "
                  f"{row['peak_rss_mb']:.0f} MB (+{row['growth_mb']:.0f})", flush=True)
    traced: dict[str, Any] = {}
    if trace:
        for kind in urls:
            top_up(urls[kind], inflight[0], steps, sleep)
            traced[kind] = window(urls[kind], 1, warm_s=warm, measure_s=measure, tracemalloc=trace)
            traced[kind]["target"] = inflight[0]
    return {"rows": rows, "executing": held, "traced": traced}


def report(res: dict[str, Any], m: dict[str, str], cond: dict[str, float], args: Any,
           total_s: float, uptimes: list[str], argv: str) -> str:
    out: list[str] = []
    w = out.append
    w("## Concurrency growth: in-flight runs x worker processes x stores (`bench_scale.py`)\n")
    w(f"Reproduce: `make bench-scale` (runs `.venv/bin/python benchmarks/bench_scale.py{argv}`). "
      f"Whole run: {total_s:.0f} s, finished {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.\n")
    w(f"- {machine_facts(m, cond, uptimes)} {versions(m)}; PostgreSQL from `make "
      "postgres` (Debian's), `synchronous_commit=on`; SQLite `synchronous=FULL`.")
    w(f"- Workload: N runs in flight (submitted, unfinished; topped up to N before every row), "
      f"each {STEPS} durable steps of a {SLEEP * 1000:.0f} ms simulated model call; worker "
      "processes with the default concurrency (256 runs each) started together; steps/s = steps "
      f"completed inside a {args.measure:g} s window (after {args.warm:g} s of warm-up from "
      "each worker's first step), summed over workers. Memory: each worker's peak RSS (VmHWM) "
      "and its growth over the RSS it had with the store open and nothing claimed. CPU per step "
      "= the workers' CPU seconds in the window / steps (PostgreSQL server's CPU not included).\n")
    w("| store | in flight | workers | steps/s | CPU per step | peak RSS per worker (growth) "
      "| load1 |")
    w("|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        rss = ", ".join(f"{x['peak_rss_mb']:.0f} (+{x['peak_rss_mb'] - x['baseline_rss_mb']:.0f})"
                        for x in r["reports"])
        w(f"| {r['store']} | {r['in_flight']:,} | {r['workers']} | {r['steps_per_s']:,.0f} | "
          f"{r['cpu_per_step_us']:,.0f} µs | {rss} MB | {r['load1']:.1f} |")
    w("")
    for kind in STORES:
        for n_workers in sorted({r["workers"] for r in res["rows"]}):
            rows = [r for r in res["rows"] if r["store"] == kind and r["workers"] == n_workers]
            if len(rows) < 2:
                continue
            lo, hi = rows[0], rows[-1]
            per_run = (hi["growth_mb"] - lo["growth_mb"]) * 2**20 / max(
                1, hi["in_flight"] - lo["in_flight"])
            w(f"- {kind}, {n_workers} worker(s): steps/s {lo['steps_per_s']:,.0f} at "
              f"{lo['in_flight']:,} in flight -> {hi['steps_per_s']:,.0f} at {hi['in_flight']:,} "
              f"({hi['steps_per_s'] / lo['steps_per_s']:.2f}x); worker memory growth "
              f"{lo['growth_mb']:.0f} -> {hi['growth_mb']:.0f} MB: "
              f"{per_run:,.0f} bytes per extra in-flight run (target <= 10 KB: "
              f"**{'met' if per_run <= 10240 else 'MISSED'}**).")
    if res.get("executing"):
        w("\n### Memory per executing run (1 worker, concurrency = runs it executes at once)\n")
        w("| store | concurrency | steps/s | peak RSS (growth) | load1 |")
        w("|---|---|---|---|---|")
        for r in res["executing"]:
            w(f"| {r['store']} | {r['concurrency']:,} | {r['steps_per_s']:,.0f} | "
              f"{r['peak_rss_mb']:.0f} (+{r['growth_mb']:.0f}) MB | {r['load1']:.1f} |")
        for kind in STORES:
            rows = [r for r in res["executing"] if r["store"] == kind]
            if len(rows) >= 2:
                lo, hi = rows[0], rows[-1]
                per = (hi["growth_mb"] - lo["growth_mb"]) * 2**20 / (
                    hi["concurrency"] - lo["concurrency"])
                w(f"\n{kind}: {per / 1024:,.1f} KB per run a worker executes at once "
                  f"(concurrency {lo['concurrency']:,} -> {hi['concurrency']:,}).")
    if res["traced"]:
        w("\n### Where a worker's memory is (tracemalloc from `go`, 1 worker; module code "
          "imported meanwhile left out)\n")
        for kind, t in res["traced"].items():
            w(f"{kind}, {t['in_flight']:,} in flight: traced {t['reports'][0]['traced_mb']:.1f} "
              f"MB, peak RSS {t['peak_rss_mb']:.0f} MB (+{t['growth_mb']:.0f}).\n")
            for part, title in (("held", "held at the window's end"),
                                ("grew", f"grown during the {args.measure:g} s window")):
                w(f"| where ({title}) | bytes | blocks |")
                w("|---|---|---|")
                for a in t["reports"][0]["top"][part]:
                    where = a["where"].replace(str(ROOT) + "/", "")
                    w(f"| `{where}` | {a['bytes']:,} | {a['count']:,} |")
                w("")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--inflight", default="10000,50000,100000")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--warm", type=float, default=3.0)
    ap.add_argument("--measure", type=float, default=10.0)
    ap.add_argument("--executing", default="500,2000",
                    help="concurrency of one worker for the per-executing-run memory ('': none)")
    ap.add_argument("--trace", type=int, default=15, help="tracemalloc sites to list (0: none)")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    with session("bench-scale-") as s:
        urls = {kind: fresh(kind, "tether_scale", s.work) for kind in STORES}
        res = run(urls, [int(x) for x in args.inflight.split(",")],
                  [int(x) for x in args.workers.split(",")], args.warm, args.measure,
                  args.trace, executing=tuple(int(x) for x in args.executing.split(",") if x))
    text = report(res, machine(), s.cond, args, s.total_s, s.uptimes, arguments())
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
