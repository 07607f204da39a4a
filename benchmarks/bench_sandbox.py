"""Sandbox start-up benchmark: cold start, pool, `import pandas`, per backend, vs a subprocess.

Writes benchmarks/results/sandbox.md. Figures are wall-clock ms for a whole exec as the caller
sees it (start the sandbox, run, collect the workspace, tear down), except `raw bwrap`, which is
bubblewrap alone with the same namespaces and mounts but no cgroups, seccomp or stub.
Firecracker's published microVM start (125 ms to user-space init) is the reference line.

Usage: python benchmarks/bench_sandbox.py [--n N] [--n-gvisor N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tether.sandbox import Limits, Sandbox, _paths
from tether.sandbox._bwrap import BwrapBackend
from tether.sandbox._workspace import Staging

OUT = Path(__file__).resolve().parent / "results" / "sandbox.md"
FIRECRACKER_MS = 125.0
TARGETS = {("bwrap", "cold"): 40.0, ("bwrap", "pool"): 10.0, ("gvisor", "cold"): 300.0}


def measure(fn: Callable[[], None], n: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def check(out: object) -> None:
    r = out.result  # type: ignore[attr-defined]
    assert r.exit_code == 0, (r.stderr, r.error)


def bench_backend(name: str, n: int) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    cold = Sandbox(name)
    rows.append((f"{name}: cold start, full harness with limits, `print(1)`",
                 measure(lambda: check(cold.run("print(1)")), n)))
    pooled = Sandbox(name, pool_size=1)
    assert pooled.pool is not None

    def from_pool() -> None:
        while pooled.pool.ready() == 0:  # type: ignore[union-attr]
            time.sleep(0.002)
        t = time.perf_counter()
        out = pooled.run("print(1)")
        check(out)
        assert out.result.pooled
        timings.append((time.perf_counter() - t) * 1000)

    timings: list[float] = []
    measure(from_pool, n, warmup=1)
    rows.append((f"{name}: pre-started pool, `print(1)`", timings[1:]))
    pooled.close()
    rows.append((f"{name}: cold, `import pandas`",
                 measure(lambda: check(cold.run("import pandas")), max(5, n // 4), warmup=1)))
    cold.close()
    return rows


def raw_bwrap(n: int) -> list[float]:
    b = BwrapBackend()
    st = Staging(Limits())
    argv = b.argv(Limits(), st, 0)
    python = str(_paths.env_python(_paths.python_env()))
    argv = [*argv[: argv.index("--seccomp")], "--", python, "-c", "print(1)"]
    user = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
    try:
        return measure(lambda: subprocess.run(argv, capture_output=True, check=True, **user), n)
    finally:
        st.destroy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--n-gvisor", type=int, default=15)
    args = ap.parse_args()
    py = str(_paths.env_python(_paths.python_env()))
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, list[float]]] = [
        ("baseline: plain subprocess `python -c 'print(1)'` (no sandbox)",
         measure(lambda: subprocess.run([py, "-c", "print(1)"], capture_output=True, check=True),
                 args.n)),
        ("baseline: plain subprocess `python -c 'import pandas'`",
         measure(lambda: subprocess.run([py, "-c", "import pandas"], capture_output=True,
                                        check=True), max(5, args.n // 4))),
        ("bwrap: raw bubblewrap, same mounts, no cgroups/seccomp/stub, `print(1)`",
         raw_bwrap(args.n)),
    ]
    rows += bench_backend("bwrap", args.n)
    rows += bench_backend("gvisor", args.n_gvisor)
    load_after = os.getloadavg()[0]

    lines = [
        "## Sandbox",
        "",
        "Wall-clock ms per exec as the caller sees it: start a fresh sandbox (or take a "
        "pre-started one), send the job, collect output and workspace, destroy the sandbox. "
        f"x86_64, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}; bwrap from Debian 12, runsc 20221219 (ptrace platform).",
        "",
        f"Load average {load_before:.2f} (before) / {load_after:.2f} (after): other work on "
        "this machine inflates tails.",
        "",
        "| measurement | n | p50 ms | p95 ms | target p50 | met |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for label, xs in rows:
        backend = label.split(":")[0]
        kind = "pool" if "pool" in label else "cold" if "cold start" in label else ""
        target = TARGETS.get((backend, kind))
        met = "" if target is None else ("yes" if statistics.median(xs) <= target else "no")
        lines.append(
            f"| {label} | {len(xs)} | {statistics.median(xs):.1f} | {pct(xs, 95):.1f} | "
            f"{'' if target is None else f'<= {target:g}'} | {met} |"
        )
    lines += [
        f"| reference: Firecracker microVM start (published figure) | | {FIRECRACKER_MS:.0f} | "
        "| | |",
        "",
        "Cold bwrap includes creating and removing three cgroup v1 groups (memory, pids, "
        "cpuacct) and moving the process into them; on this kernel the first migration after "
        "an idle period waits for an RCU grace period, which is most of the gap to raw bwrap. "
        "The pool hides it: the sandbox, cgroups and interpreter are ready before the job "
        "exists, and Python jobs run in the already-started interpreter.",
        "",
        "Reproduce: `make bench-sandbox` or "
        f"`.venv/bin/python benchmarks/bench_sandbox.py --n {args.n} --n-gvisor {args.n_gvisor}`",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
