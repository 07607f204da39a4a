"""Guard overhead per agent step.

    make bench-guards
    .venv/bin/python benchmarks/bench_guards.py [--iterations 2000]

Writes `benchmarks/results/guards.md`.

One "step" of guard work is what the guards do for one model-proposed tool call:
  policy gateway decision (a 10-rule policy incl. a SQL read-only check and a path check)
  + budget check and charge (run ledger nested in a tenant-day ledger)
  + loop detection on the tool call (canonical fingerprint over a 10-call window)
  [+ loop detection on the thought: one all-MiniLM-L6-v2 embedding of a ~25-token sentence
     (ONNX Runtime encoder, one thread) and the cosine window]
Targets: <= 0.2 ms p50 without the embedding, <= 10 ms p50 with it.
Also reported (not part of the target): PII masking of a 1 KB prompt, and the runtime's wall time
per journaled step with and without the guard interceptor (SQLite store, one run of 300 steps).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tether.guards import (  # noqa: E402
    BudgetLimits,
    GuardConfig,
    Guards,
    Ledger,
    LoopConfig,
    LoopDetector,
    MiniLMEmbedder,
    PiiMasker,
    ToolInfo,
    Vault,
    default_embedder,
    loads_policy,
)

POLICY = """
name: bench
honeypots: [shutdown, delete_all]
http: {allow_domains: [api.example.com, "*.github.com"]}
rules:
  - {id: search, tools: "search_*", effect: allow}
  - {id: sql, tools: sql_query, effect: allow, args: {query: {sql: read_only}}}
  - {id: files, tools: [read_file, list_dir], effect: allow, args: {path: {path_under: /workspace}}}
  - {id: out, tools: write_file, effect: allow, args: {path: {path_under: /workspace/out}}}
  - {id: no-secrets, tools: "*_file", effect: deny, args: {path: {regex: ".*secret.*"}}}
  - {id: mail, tools: send_email, effect: allow, args: {to: {regex: '[^@]+@corp\\.example'}}}
  - {id: small-refunds, tools: refund, effect: allow, args: {amount: {max: 100}}}
  - {id: big-refunds, tools: refund, effect: approve, args: {amount: {min: 100.01}}}
  - {id: transfer, tools: transfer, effect: approve, critical: true}
  - {id: fetch, tools: fetch, effect: allow}
"""

CALLS = [
    (ToolInfo("sql_query", "read"), {"query": "SELECT id, name FROM users WHERE team = 'x' "
                                              "ORDER BY name LIMIT 20"}),
    (ToolInfo("read_file", "read"), {"path": "/workspace/data/report.csv"}),
    (ToolInfo("search_web", "read"), {"q": "durable execution for agents"}),
    (ToolInfo("write_file", "write"), {"path": "/workspace/out/summary.md", "content": "x" * 200}),
    (ToolInfo("fetch", "read", kind="http"), {"url": "https://api.example.com/v1/items?page=2"}),
]
THOUGHTS = [
    "The report lists twenty users in team x; next I should query their open tickets.",
    "I will summarise the open tickets per user and write the summary to the out folder.",
    "The API returned page two of the items, so I can now compare them with the report.",
    "Search results mention durable execution; I will read the first article in detail.",
]
PROMPT = ("Customer Jane Doe (jane.doe@corp.example, +1 415 555 0132) asks about the refund of "
          "order 12345 paid with card 4111 1111 1111 1111. Her IBAN is DE89 3704 0044 0532 0130 "
          "00 and the support token is sk-proj-abcdefghijklmnopqrstuvwxyz123456. ") * 4


CPU: dict[int, list[float]] = {}


def measure(fn: Callable[[int], object], n: int) -> list[float]:
    """Wall-clock ms per call; the calling thread's CPU ms go to CPU[id(result)]."""
    for i in range(min(50, n)):
        fn(i)
    out, cpu = [], []
    for i in range(n):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.thread_time_ns() - c0) / 1e6)
    CPU[id(out)] = cpu
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def guard_step_factory(with_embedding: bool) -> Callable[[int], object]:
    policy = loads_policy(POLICY)
    tenant = Ledger(BudgetLimits(steps=10**9, cost_usd=1e9), scope="tenant")
    run = Ledger(BudgetLimits(steps=10**9, tool_calls=10**9, tokens_in=10**12), parent=tenant,
                 started_at=time.time())
    embedder = default_embedder() if with_embedding else None
    detector = LoopDetector(embedder, LoopConfig(repeat_calls=10**9, thought_similarity=1.01))

    def step(i: int) -> object:
        info, args = CALLS[i % len(CALLS)]
        d = policy.decide(info, args)
        run.check("tool", now=time.time())
        run.charge_effect("tool")
        detector.observe_tool_call(info.name, args)
        if with_embedding:
            detector.observe_thought(f"{THOUGHTS[i % len(THOUGHTS)]} (step {i})")
        return d

    return step


async def _bench_agent(ctx, n):  # type: ignore[no-untyped-def]
    """At module level: the run names it by file path, and the worker loads it from there."""
    for i in range(n):
        await ctx.step("work", _ident, i)
    return n


async def runtime_overhead(steps: int) -> tuple[float, float]:
    from tether import Tether

    best = {False: float("inf"), True: float("inf")}
    for guarded in (False, True, False, True):
        with tempfile.TemporaryDirectory() as d:
            guards = Guards(GuardConfig(policy=loads_policy(POLICY),
                                        run_limits=BudgetLimits(steps=10**9)))
            t = Tether(os.path.join(d, "b.db"),
                       interceptors=guards.interceptors() if guarded else ())
            await t.run(_bench_agent, 20)  # warm up
            t0 = time.perf_counter()
            run = await t.run(_bench_agent, steps)
            elapsed = time.perf_counter() - t0
            # a run that failed (e.g. its agent could not be loaded) would time nothing
            if run.status != "succeeded" or run.result != steps:
                raise SystemExit(f"benchmark run {run.status}: {run.error}")
            best[guarded] = min(best[guarded], elapsed / steps * 1e3)
            t.close()
    return best[False], best[True]


def _ident(i: int) -> int:
    return i


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    n = a.iterations
    load_before = f"{os.getloadavg()[0]:.2f}"

    plain = measure(guard_step_factory(False), n)
    emb_n = max(200, n // 5)
    embedded = measure(guard_step_factory(True), emb_n)
    masker = PiiMasker()
    pii = measure(lambda i: masker.mask(PROMPT, Vault()), max(200, n // 5))
    embed_only = measure(lambda i: default_embedder().embed([f"{THOUGHTS[i % 4]} ({i})"]), emb_n)
    backend = default_embedder().backend
    numpy_embedder = MiniLMEmbedder(backend="numpy", cache_size=0)
    embed_numpy = measure(lambda i: numpy_embedder.embed([f"{THOUGHTS[i % 4]} ({i})"]), emb_n)
    plain_rt, guarded_rt = asyncio.run(runtime_overhead(300))
    load_after = f"{os.getloadavg()[0]:.2f}"

    rows = [
        ("guard step, no embedding (policy + budget + call-loop check)", plain, 0.2),
        (f"guard step incl. thought embedding (MiniLM, {backend})", embedded, 10.0),
        ("  of which: one embedding alone", embed_only, None),
        ("  for comparison: one embedding, numpy encoder", embed_numpy, None),
        ("PII masking of a 1 KB prompt (6 kinds of PII)", pii, None),
    ]
    lines = [
        "## Guards",
        "",
        "Overhead the guards add to one agent step (a model-proposed tool call), measured "
        f"in-process; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
        "",
        f"Load average during the run: {load_before} (before) / {load_after} (after) "
        "on this machine — wall-clock figures under load include waiting for a CPU; the CPU "
        "column (thread CPU time) is what the guards themselves cost.",
        "",
        "| measurement | n | p50 ms | p90 ms | p99 ms | CPU p50 ms | target p50 "
        "| met (wall / CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for name, xs, target in rows:
        cpu = CPU[id(xs)]
        met = "" if target is None else (
            f"{'yes' if pct(xs, 0.5) <= target else 'no'} / "
            f"{'yes' if pct(cpu, 0.5) <= target else 'no'}")
        tgt = "" if target is None else f"<= {target:g} ms"
        lines.append(f"| {name} | {len(xs)} | {pct(xs, 0.5):.3f} | {pct(xs, 0.9):.3f} | "
                     f"{pct(xs, 0.99):.3f} | {pct(cpu, 0.5):.3f} | {tgt} | {met} |")
    lines += [
        "",
        f"Runtime, wall time per journaled step (one run of 300 `ctx.step`s, SQLite, best of 2): "
        f"{plain_rt:.3f} ms without guards, {guarded_rt:.3f} ms with the guard interceptor "
        f"(budget check/charge, loop bookkeeping and a tenant usage-counter increment, committed "
        f"with the step's own events, on every effect).",
        "",
        f"The embedder's encoder ran on {backend}: all-MiniLM-L6-v2's six BERT layers as a "
        "graph built in memory from the package's safetensors weights, float32, ONNX Runtime's "
        "fused `Attention`/`SkipLayerNormalization`/`BiasGelu` kernels, one intra-op thread, no "
        "spinning. Its vectors match the numpy encoder's within 1e-5 (tested). The numpy "
        "encoder (the fallback without ONNX Runtime) runs OpenBLAS with one thread for the "
        "calling thread, pre-transposed weights, a fused QKV matmul and in-place element-wise "
        "steps. Thoughts are distinct (a step number is appended), so the single-text cache "
        "never answers here.",
        "",
        "Reproduce: `make bench-guards` or "
        f"`.venv/bin/python benchmarks/bench_guards.py --iterations {n}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        out = ROOT / "benchmarks" / "results" / "guards.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
