"""Load benchmark of the REST API: runs submitted through `tether serve` (real uvicorn on
127.0.0.1, in-process worker) and through LangGraph's local API server (`langgraph dev`), the
same client for both.

Two settings, because "1,000 runs submitted concurrently" means two things physically on a
2-CPU machine:

(a) burst — N POSTs fired at once (N connections opened together), each with an idempotency
    key, then every one retried once. The server handles one request after another on one
    event loop, so the last answer waits for all the others: p99 is N / throughput, whatever
    the store does. Reported with the ratio to LangGraph, not against the 100 ms target.
(b) steady — POSTs arriving on a fixed schedule (open loop: each sent at its time whether or not
    earlier ones were answered) at RATE per second, for runs that stay in flight HOLD seconds
    each (a model call's wait, inside a durable step), so that 1,000+ runs are in flight —
    submitted and not finished — while the submissions keep arriving. p99 is taken over the
    POSTs sent while at least 1,000 runs were in flight (counted from the store's created and
    finished times). This is the setting the ≤ 100 ms target is read in: a server carrying
    1,000 concurrent runs answers a new submission within 100 ms.

Nothing lost or duplicated is asserted at the end (the store holds exactly one run per
idempotency key, all succeeded with the submitted input; every retry answered with the first
run), and the script fails otherwise. CPU seconds of the server process and of this load
generator are measured per round (the client shares the 2 CPUs with the server), and the
1-minute load average is recorded before and after.

Usage: python benchmarks/bench_api.py [--n 1000] [--rate 40] [--seconds 45] [--hold 30]
       (or `make bench-api`)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script, sys.path[0] is benchmarks/

from benchmarks.api_load import (  # noqa: E402
    IN_FLIGHT,
    Meter,
    burst,
    free_port,
    lg_version,
    pct,
    poster,
    run_langgraph,
    start_server,
    steady,
    steady_figures,
)

OUT = ROOT / "benchmarks" / "results" / "api.md"
TARGET_P99_MS = 100.0
AGENTS_MODULE = '''
import asyncio


async def _model_call(order: int, hold: float) -> dict:
    await asyncio.sleep(hold)  # what a model call waits for
    return {"order": order}


async def echo(ctx, inp):
    return inp


async def hold(ctx, inp):
    return await ctx.step("model", _model_call, inp["order"], inp["hold"])
'''

# ------------------------------------------------------------------------------- tether
async def _tether_rounds(base: str, key: str, pid: int, args: argparse.Namespace
                         ) -> dict[str, Any]:
    post = poster(base, {"Authorization": f"Bearer {key}"})
    async with httpx.AsyncClient(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as c:

        async def settled(total: int) -> None:  # every run of the tenant succeeded
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                if (await c.get("/v1/usage")).json()["runs"].get("succeeded", 0) >= total:
                    return
                await asyncio.sleep(0.25)
            raise SystemExit(f"tether: {total} runs did not finish within 900 s")

        n = args.n
        bodies = [("/v1/runs", {"agent": "echo", "input": {"order": i},
                                "idempotency_key": f"order-{i}"}) for i in range(n)]
        meter = Meter(pid)
        first = await burst(post, bodies)
        a = meter.stop()
        retried = await burst(post, bodies)
        await settled(n)
        ids = [r.json()["run"]["id"] for _, r in first]
        assert all(r.status_code == 201 for _, r in first), {r.status_code for _, r in first}
        same = all(r.status_code == 200 and r.json()["created"] is False
                   and r.json()["run"]["id"] == run_id
                   for (_, r), run_id in zip(retried, ids, strict=True))
        m = round(args.rate * args.seconds)
        more = [("/v1/runs", {"agent": "hold", "input": {"order": n + i, "hold": args.hold},
                              "idempotency_key": f"order-{n + i}"}) for i in range(m)]
        meter = Meter(pid)
        sent, lag = await steady(post, more, args.rate)
        await settled(n + m)
        b = meter.stop()
        assert all(r.status_code == 201 for _, _, r in sent), {r.status_code for _, _, r in sent}
    lat = [ms for ms, _ in first]
    return {"p50": statistics.median(lat), "p99": pct(lat, 99), "max": max(lat),
            "burst_s": a["wall"], "burst_server_cpu": a["server_cpu"],
            "burst_client_cpu": a["client_cpu"],
            "retry_p50": statistics.median(ms for ms, _ in retried),
            "retry_p99": pct([ms for ms, _ in retried], 99), "retries_same_run": same,
            "steady_n": m, "steady_s": b["wall"], "steady_server_cpu": b["server_cpu"],
            "steady_client_cpu": b["client_cpu"], "lag_ms": lag * 1000,
            "throughput": m / b["wall"], "sent": sent}


def run_tether(args: argparse.Namespace) -> dict[str, Any]:
    from tether.runtime import Tether
    from tether.server.keys import ApiKeys

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    db = tmp / "tether.db"
    t = Tether(db)
    key, _ = ApiKeys(t.store).create("bench", "operator", "bench")
    t.close()
    (tmp / "bench_api_agents.py").write_text(AGENTS_MODULE)
    (tmp / "agents.yaml").write_text("echo: bench_api_agents:echo\n"
                                     "hold: bench_api_agents:hold\n")
    port = free_port()
    concurrency = str(round(args.rate * args.seconds) + args.n)  # every run can be in flight
    proc = start_server([sys.executable, "-m", "tether", "serve", "--port", str(port), "--agents",
                   str(tmp / "agents.yaml"), "--db", str(db), "--concurrency", concurrency],
                  ROOT, {"PYTHONPATH": os.pathsep.join(filter(None, [
                      str(tmp), os.environ.get("PYTHONPATH")]))},
                  f"http://127.0.0.1:{port}/openapi.json")
    try:
        figures = asyncio.run(_tether_rounds(f"http://127.0.0.1:{port}", key, proc.pid, args))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    t = Tether(db)  # what the store holds, read after the server stopped
    runs = t.runs(limit=1_000_000)
    t.close()
    shutil.rmtree(tmp, ignore_errors=True)
    keys = [r.options["idempotency"]["key"] for r in runs]
    finished = [r.updated_at for r in runs if r.agent.endswith(":hold")]
    sent = figures.pop("sent")
    if args.latencies:  # (sent at, ms) of every (b) POST, for a look at the slow ones
        args.latencies.write_text(json.dumps([(at, ms) for at, ms, _ in sent]))
    figures.update(steady_figures(sent, finished))
    figures.update(
        runs=len(runs), distinct=len({r.id for r in runs}), distinct_keys=len(set(keys)),
        succeeded=sum(r.status == "succeeded" for r in runs),
        results_ok=all((r.result or {}).get("order") == int(k.split("-")[1])
                       for r, k in zip(runs, keys, strict=True)))
    return figures


# ------------------------------------------------------------------------------ report
def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def report(args: argparse.Namespace, ours: dict[str, Any], lg: dict[str, Any] | str,
           loads: list[float], ok: bool) -> list[str]:
    m = ours["steady_n"]
    lines = [
        "## REST API under load (`tether serve`)",
        "",
        "Tether's `tether serve` (real uvicorn on 127.0.0.1, the in-process worker executing "
        "the runs) and LangGraph's local API server (`langgraph dev`, in-memory) on the same "
        "workload, driven by the same client on the same machine (2 shared CPUs): each POST "
        "on its own connection, written with asyncio streams.",
        "",
        f"- **(a) burst**: {args.n} POSTs of a one-step run fired at once, each with an "
        "idempotency key (Tether then retries every one). One event loop answers them one "
        "after another, so the last answer waits for all the others: p99 here is "
        f"{args.n} ÷ throughput, not a latency a server can bring under 100 ms on 2 CPUs.",
        f"- **(b) steady, {IN_FLIGHT}+ runs in flight**: {m} POSTs arriving on a fixed "
        f"schedule ({args.rate:g}/s for {args.seconds:g} s, open loop), each run holding "
        f"{args.hold:g} s in a durable step (a model call's wait), so more than {IN_FLIGHT} "
        "runs are in flight (submitted, not finished) while submissions keep arriving. The "
        f"p99 is over the POSTs sent while ≥ {IN_FLIGHT} runs were in flight. **The ≤ "
        f"{TARGET_P99_MS:.0f} ms target is read in this setting**: a server carrying "
        f"{IN_FLIGHT} concurrent runs answers a new submission within {TARGET_P99_MS:.0f} ms.",
        "",
        "| | Tether `tether serve` | LangGraph `langgraph dev` | ratio (LangGraph / Tether) |",
        "|---|---|---|---|",
    ]

    def row(label: str, key: str, fmt: str, scale: float = 1.0) -> str:
        mine = ours.get(key)
        theirs = lg.get(key) if isinstance(lg, dict) else None
        mine = None if mine is None else mine * scale
        theirs = None if theirs is None else theirs * scale
        ratio = f"{theirs / mine:.2f}" if theirs and mine else "—"
        return f"| {label} | {_fmt(mine, fmt)} | {_fmt(theirs, fmt)} | {ratio} |"

    lines += [
        row(f"(a) burst of {args.n}: submit p50 (ms)", "p50", ".1f"),
        row(f"(a) burst of {args.n}: submit p99 (ms)", "p99", ".1f"),
        row(f"(a) all {args.n} answered (s)", "burst_s", ".2f"),
        row("(a) server CPU while answering, per POST (ms)", "burst_server_cpu", ".2f",
            1000 / args.n),
        row("(b) peak runs in flight", "peak_in_flight", ".0f"),
        row(f"(b) POSTs sent with ≥ {IN_FLIGHT} in flight", "loaded_n", ".0f"),
        row(f"(b) submit p50 with ≥ {IN_FLIGHT} in flight (ms)", "loaded_p50", ".1f"),
        row(f"(b) **submit p99 with ≥ {IN_FLIGHT} in flight (ms)**", "loaded_p99", ".1f"),
        row(f"(b) submit max with ≥ {IN_FLIGHT} in flight (ms)", "loaded_max", ".1f"),
        row(f"(b) submit p99, all {m} POSTs (ms)", "steady_p99", ".1f"),
        row("(b) server CPU per run, submit to finish (ms)", "steady_server_cpu", ".2f",
            1000 / m),
        row("(b) runs finished per second, first POST to last finish", "throughput", ".1f"),
    ]
    client_a = ours["burst_client_cpu"] / ours["burst_s"]
    client_b = ours["steady_client_cpu"] / ours["steady_s"]
    p99 = ours["loaded_p99"]
    lines += [
        "",
        f"- Target p99 submit ≤ {TARGET_P99_MS:.0f} ms with {IN_FLIGHT}+ runs in flight (b): "
        f"**{'met' if p99 is not None and p99 <= TARGET_P99_MS else 'NOT met'}** "
        f"({_fmt(p99, '.1f')} ms over {ours['loaded_n']} POSTs). All {args.n} at once (a): "
        f"p99 {ours['p99']:.0f} ms, bounded by throughput as said above.",
        f"- (a) Retried round (same idempotency keys): p50 {ours['retry_p50']:.1f} ms, p99 "
        f"{ours['retry_p99']:.1f} ms; every retry answered 200 with the first run "
        f"(`created: false`): {'yes' if ours['retries_same_run'] else 'NO'}.",
        f"- Store after both rounds ({args.n + m} submitted): {ours['runs']} runs, "
        f"{ours['distinct']} distinct ids, {ours['distinct_keys']} distinct idempotency keys, "
        f"{ours['succeeded']} succeeded, results as submitted: "
        f"{'yes' if ours['results_ok'] else 'NO'} — nothing lost or duplicated: "
        f"**{'yes' if ok else 'NO'}** (asserted: the script fails otherwise).",
        f"- Load generator (this client, same machine): {ours['burst_client_cpu']:.2f} CPU s "
        f"in (a) ({client_a:.0%} of one CPU), {ours['steady_client_cpu']:.2f} CPU s in (b) "
        f"({client_b:.0%}); its largest lag behind the (b) schedule: {ours['lag_ms']:.0f} ms. "
        f"Tether's server: {ours['burst_server_cpu']:.2f} CPU s in (a), "
        f"{ours['steady_server_cpu']:.2f} in (b).",
    ]
    if isinstance(lg, dict):
        lines.append(
            f"- LangGraph {lg_version()} (langgraph-api, langgraph), in-memory dev server, "
            f"`--n-jobs-per-worker` as large as Tether's worker concurrency: {lg['errors']} "
            f"failed POSTs, {lg['threads']} threads, {lg['unfinished']} runs unfinished; its "
            "run creation takes no idempotency key, so no retry round; a run's finish is its "
            "thread's last update. Its server used "
            f"{lg['burst_server_cpu']:.2f} CPU s in (a), {lg['steady_server_cpu']:.2f} in "
            f"(b); the client lagged its schedule by up to {lg['lag_ms']:.0f} ms.")
    else:
        lines.append(f"- LangGraph: {lg}.")
    lines += [
        f"- 1-minute load average (`uptime`): {loads[0]:.2f} before, {loads[1]:.2f} after "
        f"Tether, {loads[2]:.2f} after LangGraph (a shared machine: other work ran meanwhile).",
        "",
        f"Reproduce: `make bench-api` (or `.venv/bin/python benchmarks/bench_api.py --n "
        f"{args.n} --rate {args.rate:g} --seconds {args.seconds:g} --hold {args.hold:g}`).",
        "",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="POSTs fired at once in (a)")
    ap.add_argument("--rate", type=float, default=40.0, help="POSTs per second in (b)")
    ap.add_argument("--seconds", type=float, default=45.0, help="length of (b)'s schedule")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds each (b) run lasts")
    ap.add_argument("--no-langgraph", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--latencies", type=Path, help="write (sent at, ms) of each (b) POST here")
    args = ap.parse_args()
    loads = [os.getloadavg()[0]]
    ours = run_tether(args)
    loads.append(os.getloadavg()[0])
    lg = "not run: --no-langgraph" if args.no_langgraph else run_langgraph(args)
    loads.append(os.getloadavg()[0])
    expected = args.n + ours["steady_n"]
    ok = (ours["runs"] == ours["distinct"] == ours["distinct_keys"] == ours["succeeded"]
          == expected and ours["retries_same_run"] and ours["results_ok"])
    lines = report(args, ours, lg, loads, ok)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    if not ok:
        raise SystemExit("runs were lost or duplicated")


if __name__ == "__main__":
    main()
