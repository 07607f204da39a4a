"""`main` of the core benchmarks (each benchmark: Tether, then LangGraph; the report; results/
core.md after a full run) and `profile` (a cProfile of Tether's side)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import RESULT, ROOT, ROUNDS, STORAGE_MSG
from .lg_runner import lg, lg_params
from .probes import conditions, machine
from .report import report
from .tether_side import TETHER, sqlite_floor, tether_cpu, tether_cpu_breakdown


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


def main(description: str) -> None:
    """`description`: the first line of `benchmarks/bench_core.py`'s docstring (`--help`)."""
    ap = argparse.ArgumentParser(description=description)
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
                # the same cycle with plain {"role", "content"} dicts on both sides and
                # LangGraph's cheapest state, `Annotated[list, operator.add]`
                (plain := work / bench / "dicts").mkdir()
                results[bench]["dicts"] = {
                    "tether": asyncio.run(tether_cpu(plain, kind="dict")),
                    "lg": lg(bench, {**lg_params(bench, plain), "state": "dicts"})}
            print(f"[{bench}] {time.perf_counter() - t0:.1f} s\n  tether: "
                  f"{json.dumps(tether, default=str)[:600]}\n  langgraph: "
                  f"{json.dumps(lang, default=str)[:600]}", file=sys.stderr, flush=True)
        text = report(results, machine(), work, time.perf_counter() - start)
    if full:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(text + "\n")
        print(f"wrote {RESULT.relative_to(ROOT)}", file=sys.stderr)
    print(text)
