"""Chaos benchmark: 1,000 trials of durable agents while worker processes are SIGKILLed.

    make bench-chaos
    .venv/bin/python benchmarks/bench_chaos.py [--trials 1000]

Writes `benchmarks/results/chaos.md`; exits 1 if any invariant was violated.

The harness is `tests/runtime/chaos_harness.py`, shared with the suite's 200-trial test
(`tests/runtime/test_chaos.py`). A trial is one root run of `tests/runtime/chaos_agents.py:trial`
(sequential steps, a timer, a gather of 2-3 branches, usually a child run, sometimes a
grandchild); its activities append to a side-effect log (fsync'd), idempotent ones deduplicate by
their `idempotency_key`. Worker processes (1s lease) are SIGKILLed at random moments and replaced;
the harness resolves in-doubt steps as a human would (skip if the log shows the effect, retry
otherwise). Then it checks: every run succeeded with the expected result, every completed step's
effect is in the log exactly once, no non-idempotent step ran twice or was re-run without a
retry decision, and `PRAGMA integrity_check` is ok.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tether  # noqa: E402
from tests.runtime.chaos_harness import ChaosConfig, ChaosReport, run_chaos  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "chaos.md"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _runtime_revision() -> str:
    """Which runtime the workers ran: the commit, and whether tether/runtime or tether/store had
    uncommitted changes (figures from a dirty tree are not reproducible from the commit)."""
    rev = _git("rev-parse", "--short", "HEAD") or "unknown"
    where = Path(tether.__file__).resolve().parent
    if where != ROOT / "tether":
        return f"{rev}, but `tether` imported from {where}"
    dirty = _git("status", "--porcelain", "--", "tether/runtime", "tether/store")
    return f"{rev}{' + uncommitted changes in tether/runtime or tether/store' if dirty else ''}"


def render(report: ChaosReport, command: str, load: tuple[float, float]) -> str:
    cfg = report.config
    ok = not report.violations
    rows = [
        ("trials (root runs)", report.trials),
        ("runs incl. children and grandchildren", report.runs),
        ("completed steps (activities)", report.steps_completed),
        ("side-effect log entries (effects performed)", report.log_entries),
        ("SIGKILLs (each followed by a replacement worker)", report.kills),
        ("  of which the victim held runs", report.kills_holding_runs),
        ("  of which landed mid-step (a step of the victim was started, outcome not journaled)",
         report.kills_mid_step),
        ("kill moments skipped (kill budget per trial reached, or no worker old enough)",
         report.kills_skipped),
        ("steps interrupted (started, outcome never journaled by that attempt)",
         report.interrupted_steps),
        ("trials with an interrupted step", report.trials_interrupted),
        ("trials with a run on a worker when it was killed", report.trials_hit),
        ("in-doubt flags (non-idempotent steps stopped for a human)", report.in_doubt_flags),
        ("  resolved `--skip` (the log showed the effect)", report.resolved_skip),
        ("  resolved `--retry` (the log showed no effect)", report.resolved_retry),
        ("  `resolve` refused because the run was not `waiting` (a child's end woke it)",
         report.resolve_refused),
        ("idempotent steps re-executed after a kill", report.idempotent_reexecutions),
        ("  of which the API deduplicated by idempotency key", report.dedup_hits),
        ("worker processes started", report.workers_started),
        *([("SIGSTOP stalls past the lease", report.pauses),
           ("  effects a woken worker performed after its step was flagged in doubt",
            report.late_effects)] if cfg.pause_fraction else []),
        ("`PRAGMA integrity_check`", "ok" if not report.integrity else "; ".join(report.integrity)),
        ("invariant violations", len(report.violations)),
        ("duration", f"{report.duration:.1f} s"),
    ]
    lines = [
        "## Chaos (SIGKILLed workers)",
        "",
        f"**{'PASSED' if ok else 'FAILED'}**: {report.trials} trials of a durable agent "
        f"(steps, timers, `ctx.gather`, child runs) on one SQLite file while {cfg.workers} worker "
        f"processes (lease {cfg.lease_ttl:g}s, {cfg.concurrency} runs each, {cfg.in_flight} trials "
        f"in flight) were SIGKILLed every {cfg.mean_kill_interval:g}s on average (at most "
        f"{cfg.kills_per_trial:g} kills per trial submitted) and replaced"
        + (f"; {cfg.pause_fraction:.0%} of the chaos events were SIGSTOP stalls of 1.2-2.5 "
           "leases instead (the worker wakes up inside work others took over)"
           if cfg.pause_fraction else "") + ". "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"runtime at {_runtime_revision()}.",
        "",
        f"Load average {load[0]:.2f} (before) / {load[1]:.2f} (after): other work on this "
        "machine stretches the duration.",
        "",
        "| measurement | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "Invariants checked: every run ends `succeeded` with the result its seed implies; every "
        "completed (or skipped) step has exactly one effect in the side-effect log (idempotent "
        "steps: exactly one non-deduplicated effect, under the key `run_id:seq` of the step's "
        "first start); no non-idempotent step has two effects or was started again without a "
        "`--retry` decision; every interrupted non-idempotent attempt was flagged in doubt; no "
        "effect exists for a step the journal does not show as done; "
        "`PRAGMA integrity_check` is ok.",
        "",
    ]
    if not ok:
        lines += ["Violations (first 10):", ""]
        lines += [f"- {v[:400]}" for v in report.violations[:10]]
        lines.append("")
    lines += [f"Reproduce: `make bench-chaos` or `{command}`", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-interval", type=float, default=0.05,
                        help="mean seconds between SIGKILLs")
    parser.add_argument("--kills-per-trial", type=float, default=0.75,
                        help="kill budget: at most this many SIGKILLs per trial submitted so far")
    parser.add_argument("--pause-fraction", type=float, default=0.0,
                        help="share of chaos events that are SIGSTOP stalls instead of kills")
    parser.add_argument("--worker-cmd", choices=("script", "cli"), default="script",
                        help="workers: tests/runtime/chaos_worker.py or `tether worker`")
    parser.add_argument("--time-limit", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="keep the database, log and worker stderr in this dir")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    cfg = ChaosConfig(trials=args.trials, workers=args.workers,
                      mean_kill_interval=args.kill_interval,
                      kills_per_trial=args.kills_per_trial, time_limit=args.time_limit,
                      worker_cmd=args.worker_cmd, pause_fraction=args.pause_fraction,
                      seed=args.seed)
    command = (f".venv/bin/python benchmarks/bench_chaos.py --trials {args.trials} "
               f"--workers {args.workers} --kill-interval {args.kill_interval:g} "
               f"--kills-per-trial {args.kills_per_trial:g} "
               f"--pause-fraction {args.pause_fraction:g} --seed {args.seed}"
               + (f" --worker-cmd {args.worker_cmd}" if args.worker_cmd != "script" else ""))
    before = os.getloadavg()[0]
    if args.keep:
        report = run_chaos(cfg, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="tether-chaos-") as tmp:
            report = run_chaos(cfg, Path(tmp))
    after = os.getloadavg()[0]
    print(report.summary())
    for v in report.violations[:20]:
        print("VIOLATION:", v[:400])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render(report, command, (before, after)))
    print(f"wrote {args.out}")
    return 0 if not report.violations else 1


if __name__ == "__main__":
    sys.exit(main())
