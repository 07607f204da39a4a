"""The guards' CPU on one governed tool call, in-process, through the real runtime (issue 16).

    make bench-guard-call
    .venv/bin/python benchmarks/bench_guard_call.py [--calls 300] [--rounds 5]

Writes `benchmarks/results/guard_call.md`.

A governed call is what `tether mcp serve` runs for every MCP `tools/call`: a Tether run whose
agent calls `Guards.tool(ctx, "add", {"a": i, "b": 1})` under a policy that allows `add`, with the
guards' defaults (PII masking on, loop detection, budgets unlimited). Two shapes:
- "one call per run" (the MCP server's): each run makes one call, so the guards also make the
  run's state (budget scopes, loop detector, vault, masker) on every call;
- "calls in one run" (an agent loop's): one run makes N calls with distinct arguments.

Two figures per shape, CPU only (the machine is shared; wall time would measure the queue):
- guard CPU per call: the event-loop thread's CPU spent in the guards' own code, i.e.
  `ToolGateway.call` minus the runtime's `ctx.tool` inside it, plus `GuardInterceptor.before`
  and `.after` (which the runtime calls inside `ctx.tool`). Measured by wrapping those entry
  points with `time.thread_time_ns()`; runs execute one at a time (`concurrency=1`), so
  nothing else of ours runs on that thread in between. The median call of a round; the best
  round of `--rounds`.
- process CPU per call, with guards vs the same agent calling `ctx.tool` without guards (the
  whole runtime + SQLite journal), rounds interleaved A/B; best of `--rounds`.
Also the guards' parts in isolation (no runtime): policy prepare/judge, PII release, the loop
fingerprint, the per-run state.

`--against COMMIT`: the same, before (this tree with `tether/guards` as of COMMIT, in a temporary
copy) and after (this tree), in `--pairs` alternating processes; medians and bests of the pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tether import Tether  # noqa: E402
from tether.guards import GuardConfig, GuardInterceptor, Guards, loads_policy  # noqa: E402
from tether.guards._pii_release import release_pii  # noqa: E402
from tether.guards._toolcall import ToolGateway  # noqa: E402
from tether.guards.loops import LoopDetector  # noqa: E402
from tether.runtime.context import Context  # noqa: E402
from tether.tools import ToolRegistry  # noqa: E402

POLICY = """\
name: bench
rules:
  - id: adds
    tools: [add]
    effect: allow
"""

TOOLS = ToolRegistry()


@TOOLS.tool(side_effect="read", idempotent=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# ----------------------------------------------------------------------------- agents
async def guarded_one(ctx: Any, i: int) -> int:
    """The MCP server's shape: one governed call per run."""
    result = await ctx.guards.tool(ctx, "add", {"a": i, "b": 1}, TOOLS)
    if not result.ok:
        raise RuntimeError(f"the guarded call failed: {result.error}")
    return int(result.output)


async def plain_one(ctx: Any, i: int) -> int:
    result = await ctx.tool(TOOLS, "add", {"a": i, "b": 1})
    return int(result.output)


async def guarded_many(ctx: Any, n: int) -> int:
    """An agent loop's shape: n calls in one run (distinct arguments: no loop is detected)."""
    total = 0
    for i in range(n):
        result = await ctx.guards.tool(ctx, "add", {"a": i, "b": 1}, TOOLS)
        if not result.ok:
            raise RuntimeError(f"the guarded call failed: {result.error}")
        total += int(result.output)
    return total


async def plain_many(ctx: Any, n: int) -> int:
    total = 0
    for i in range(n):
        result = await ctx.tool(TOOLS, "add", {"a": i, "b": 1})
        total += int(result.output)
    return total


# ------------------------------------------------------------------------ the meter
class GuardMeter:
    """Thread CPU inside the guards' entry points, minus the runtime's `ctx.tool` nested in the
    gateway's call (the interceptor's `before`/`after` inside it are counted back); one sample
    per gateway call, so a call preempted or slowed by another process shows as an outlier the
    median ignores."""

    def __init__(self) -> None:
        self.ns = 0
        self.on = False
        self.samples: list[int] = []

    def install(self) -> None:
        meter = self

        def wrap(fn: Callable[..., Awaitable[Any]], sign: int,
                 per_call: bool) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(fn)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                if not meter.on:
                    return await fn(*args, **kwargs)
                before = meter.ns
                t0 = time.thread_time_ns()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    meter.ns += sign * (time.thread_time_ns() - t0)
                    if per_call:
                        meter.samples.append(meter.ns - before)
            return timed

        for owner, name, sign in ((ToolGateway, "call", 1), (Context, "tool", -1),
                                  (GuardInterceptor, "before", 1),
                                  (GuardInterceptor, "after", 1)):
            setattr(owner, name, wrap(getattr(owner, name), sign, owner is ToolGateway))

    def reset(self, on: bool) -> None:
        self.ns, self.on, self.samples = 0, on, []

    def median_us(self) -> float:
        return statistics.median(self.samples) / 1e3 if self.samples else float("nan")


METER = GuardMeter()


def _guards(record_usage: bool = True) -> Guards:
    return Guards(GuardConfig(policy=loads_policy(POLICY), record_usage=record_usage),
                  tools=TOOLS)


async def _drive(t: Tether, run_ids: list[str]) -> None:
    last = run_ids[-1]
    worker = t.worker()
    await worker.serve(until=lambda: t._settled(last))
    for rid in run_ids:
        run = t.get(rid)
        if run.status != "succeeded":
            raise SystemExit(f"benchmark run {rid} {run.status}: {run.error}")


async def one_round(guarded: bool, shape: str, calls: int, db_dir: str, *,
                    record_usage: bool = True) -> tuple[float, float]:
    """(process CPU µs per call, median guard CPU µs per call) of one round."""
    db = os.path.join(db_dir, f"{'g' if guarded else 'p'}-{shape}-{time.monotonic_ns()}.db")
    t = Tether(db, guards=_guards(record_usage) if guarded else None, concurrency=1)
    agent: Callable[[Any, int], Awaitable[int]]
    try:
        if shape == "per-run":
            agent = guarded_one if guarded else plain_one
            await _drive(t, [t.submit(agent, i) for i in range(10)])  # warm up
            ids = [t.submit(agent, i) for i in range(calls)]
        else:
            agent = guarded_many if guarded else plain_many
            await _drive(t, [t.submit(agent, 10)])
            ids = [t.submit(agent, calls)]
        METER.reset(guarded)
        c0 = time.process_time_ns()
        await _drive(t, ids)
        cpu = time.process_time_ns() - c0
        METER.on = False
        if guarded and len(METER.samples) != calls:
            raise SystemExit(f"{len(METER.samples)} gateway calls measured, {calls} made")
        return cpu / calls / 1e3, METER.median_us()
    finally:
        t.close()


# ------------------------------------------------------------------------ the parts
def parts(n: int) -> list[tuple[str, float]]:
    """Best-of-5 CPU µs per operation of each part, outside the runtime."""
    guards = _guards()
    gate, policy = guards.gate, guards.config.policy
    st_maker = guards.states
    from tether.guards.pii import PiiMasker, Vault

    def run_masker() -> PiiMasker:  # what a run's state gets (before 'fresh': a new masker)
        if hasattr(st_maker, "_pii_masker"):
            return st_maker._pii_masker().fresh()
        older: Any = st_maker
        return PiiMasker(older._pii_recognizers(), include_defaults=False)

    masker = run_masker()
    vault = Vault()
    detector = LoopDetector(None, guards.config.loops)
    cases: list[tuple[str, Callable[[int], object]]] = [
        ("PolicyGate.parse", lambda i: gate.parse("add", {"a": i, "b": 1})),
        ("PolicyGate.prepare", lambda i: gate.prepare(policy, "add", {"a": i, "b": 1}, TOOLS)),
        ("PolicyGate.judge", lambda i: gate.judge(policy, "add", {"a": i, "b": 1}, TOOLS)),
        ("PolicyGate.decide (parse, prepare, judge)", lambda i: gate.decide(
            policy, "add", {"a": i, "b": 1}, TOOLS)),
        ("release_pii (no placeholders)", lambda i: release_pii(
            gate, policy, masker, vault, "add", {"a": i, "b": 1}, TOOLS)),
        ("LoopDetector.observe_tool_call", lambda i: detector.observe_tool_call(
            "add", {"a": i % 7 + 1000 * (i // 7), "b": 1})),
        ("LoopDetector()", lambda i: LoopDetector(None, guards.config.loops)),
        ("a run's PiiMasker", lambda i: run_masker()),
    ]
    out = []
    for name, fn in cases:
        best = float("inf")
        for _ in range(5):
            t0 = time.thread_time_ns()
            for i in range(n):
                fn(i)
            best = min(best, (time.thread_time_ns() - t0) / n / 1e3)
        out.append((name, best))
    return out


def measure(rounds: int, calls: int, *, usage_off: dict[str, float] | None = None
            ) -> dict[tuple[str, bool], tuple[float, float]]:
    """(shape, guarded) -> best (process CPU µs/call, median guard CPU µs/call) of the rounds;
    with `usage_off`, also each shape's best process CPU with the guards' usage counters off
    (`GuardConfig(record_usage=False)`), in the same interleaving."""
    best: dict[tuple[str, bool], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds):
            for shape in ("per-run", "in-run"):
                for guarded in (False, True):  # interleaved A/B
                    cpu, guard = asyncio.run(one_round(guarded, shape, calls, d))
                    old = best.get((shape, guarded), (float("inf"), float("inf")))
                    best[(shape, guarded)] = (min(old[0], cpu), min(old[1], guard))
                if usage_off is not None:
                    cpu, _ = asyncio.run(one_round(True, shape, calls, d, record_usage=False))
                    usage_off[shape] = min(usage_off.get(shape, float("inf")), cpu)
    return best


def compare(a: argparse.Namespace) -> None:
    """Before (`tether/guards` at `a.against`) vs after (this tree), alternating processes."""
    load_before = _uptime()
    figures: dict[str, list[dict[str, list[float]]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "before"
        shutil.copytree(ROOT / "tether", base / "tether",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.rmtree(base / "tether" / "guards")
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.against, "tether/guards"],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(base, filter="data")
        (base / "benchmarks").mkdir()
        shutil.copy(Path(__file__), base / "benchmarks" / Path(__file__).name)
        for i in range(a.pairs):
            for side, root in (("before", base), ("after", ROOT)):
                out = Path(tmp) / f"{side}{i}.json"
                subprocess.run([sys.executable, str(root / "benchmarks" / Path(__file__).name),
                                "--json-out", str(out), "--calls", str(a.calls),
                                "--rounds", str(a.rounds)], check=True, cwd=root)
                figures[side].append(json.loads(out.read_text()))
    load_after = _uptime()
    lines = [
        "## Guards on one governed tool call: before and after",
        "",
        f"Guard CPU per call (median call of the best of {a.rounds} rounds of {a.calls}; see "
        f"above) with `tether/guards` as of `{a.against}` (before) and as now (after), "
        f"{a.pairs} alternating pairs of processes; the rest of the tree is the same.",
        "",
        f"Load before: `{load_before}`; after: `{load_after}`.",
        "",
        "| shape | before: median / best µs | after: median / best µs | after / before "
        "(medians) |",
        "|---|---:|---:|---:|",
    ]
    for shape, label in (("per-run", "one call per run (MCP server)"),
                         ("in-run", f"{a.calls} calls in one run (agent loop)")):
        got = {side: [f[f"{shape}/1"][1] for f in figures[side]] for side in figures}
        med = {side: statistics.median(v) for side, v in got.items()}
        lines.append(f"| {label} | {med['before']:.1f} / {min(got['before']):.1f} | "
                     f"{med['after']:.1f} / {min(got['after']):.1f} | "
                     f"{med['after'] / med['before']:.2f} |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/bench_guard_call.py --against "
              f"{a.against} --pairs {a.pairs} --calls {a.calls} --rounds {a.rounds}`", ""]
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        out = ROOT / "benchmarks" / "results" / "guard_call.md"
        kept = out.read_text().split("## Guards on one governed tool call: before")[0] \
            if out.exists() else ""
        out.write_text(kept.rstrip("\n") + "\n\n" + text if kept else text)
        print(f"wrote {out}")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {os.getloadavg()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--parts", type=int, default=2000, help="iterations per part")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--parts-only", action="store_true",
                    help="only the parts outside the runtime (prints, writes nothing)")
    ap.add_argument("--json-out", help="write the runtime figures as JSON here, nothing else")
    ap.add_argument("--against", metavar="COMMIT",
                    help="compare with tether/guards as of COMMIT (appended to the results)")
    ap.add_argument("--pairs", type=int, default=5, help="before/after pairs for --against")
    a = ap.parse_args()
    if a.parts_only:
        for name, us in parts(a.parts):
            print(f"{name}: {us:.2f} µs")
        return
    if a.against:
        compare(a)
        return
    METER.install()
    load_before = _uptime()
    usage_off: dict[str, float] = {}
    best = measure(a.rounds, a.calls, usage_off=None if a.json_out else usage_off)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({f"{k[0]}/{int(k[1])}": v for k, v in best.items()}))
        return
    part_rows = parts(a.parts)
    load_after = _uptime()

    lines = [
        "## Guards on one governed tool call",
        "",
        "CPU the guards spend on one governed tool call (`Guards.tool(ctx, \"add\", {...})` "
        "under a policy that allows it; PII masking and loop detection on, budgets unlimited), "
        "in-process through the real runtime and a SQLite journal; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Best of {a.rounds} interleaved rounds of "
        f"{a.calls} calls.",
        "",
        f"Load before: `{load_before}`; after: `{load_after}`.",
        "",
        "| shape | guard CPU µs/call (median) | process CPU µs/call, guarded | unguarded "
        "| difference | guarded, usage counters off |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, label in (("per-run", "one call per run (MCP server)"),
                         ("in-run", f"{a.calls} calls in one run (agent loop)")):
        g_cpu, g_guard = best[(shape, True)]
        p_cpu, _ = best[(shape, False)]
        lines.append(f"| {label} | {g_guard:.1f} | {g_cpu:.1f} | {p_cpu:.1f} | "
                     f"{g_cpu - p_cpu:+.1f} | {usage_off[shape]:.1f} |")
    lines += [
        "",
        "Guard CPU: the event-loop thread's CPU inside `ToolGateway.call` (less the runtime's "
        "`ctx.tool` in it) and `GuardInterceptor.before`/`.after`, median call of the best "
        "round. Process CPU: every thread of the process, the runtime and its journal writes "
        "included, total of the best round over its calls. Usage counters off: "
        "`GuardConfig(record_usage=False)`, so no tenant usage-counter upsert commits with "
        "each effect (what the guards cost the store, on top of their own CPU).",
        "",
        f"The parts, outside the runtime (best of 5 rounds of {a.parts}; thread CPU µs "
        "per operation):",
        "",
        "| part | µs |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {us:.1f} |" for name, us in part_rows]
    lines += [
        "",
        "Reproduce: `make bench-guard-call` or `.venv/bin/python benchmarks/bench_guard_call.py "
        f"--calls {a.calls} --rounds {a.rounds} --parts {a.parts}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        out = ROOT / "benchmarks" / "results" / "guard_call.md"
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
