"""The chaos harness shared by `tests/runtime/test_chaos.py` (200 trials) and
`benchmarks/bench_chaos.py` (1,000 trials).

A *trial* is one root run of `chaos_agents.trial`: 3-8 activities (idempotent and not, sync and
async, each an fsync'd append to a side-effect log), a durable timer, a `ctx.gather` of 2-3
branches with their own steps and timers, and in most trials a child run (sometimes with a
grandchild) joined from inside a branch. All trials are queued on one SQLite file at the start;
real worker processes (`chaos_worker.py`, or `tether worker`) execute them with a short lease.

Meanwhile the harness:
- SIGKILLs a random worker at random moments (exponential inter-kill times) and starts a
  replacement, so kills land during replay, inside activities, between an effect and its
  journaling, inside commits, while timers and children are pending;
- optionally (`pause_fraction`), instead of a kill, SIGSTOPs a worker for 1.2-2.5 lease TTLs (a
  GC pause, a frozen VM): other workers take its runs over, then it wakes up inside its old work;
  lease fencing must keep its writes out of the journals (its running activities still act, which
  is why the human below never decides while the worker that started a step is stalled);
- acts as the human operator: a run `waiting` with `options["in_doubt"]` has a non-idempotent step
  whose outcome is unknown; the harness looks that (run, step) up in the side-effect log and
  answers `resolve --skip --result <logged result>` if the effect happened, `--retry` otherwise
  (waiting a grace period first when the worker that started the step is still alive, as a
  careful human would).

When every trial has finished the harness stops the workers and checks the invariants of the
issue (see `verify`). A report object carries the figures and the list of violations.

The pieces: `chaos_report.py` (`ChaosConfig`, `ChaosReport`, `Decision`), `chaos_workers.py`
(starting, killing, pausing and stopping workers), `chaos_invariants.py` (the side-effect log
reader and `verify`); this module holds the driver (`Chaos.run`, the human operator,
`run_chaos`) and re-exports the rest, so `from tests.runtime.chaos_harness import ...` still works.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.store.pg_support import raw_connection
from tether import Tether
from tether.runtime import NotInDoubt
from tether.store import TERMINAL_STATUSES, Event

from . import chaos_agents
from .chaos_invariants import ChaosInvariants, LogReader
from .chaos_report import ChaosConfig, ChaosReport, Decision
from .chaos_workers import REPO, ChaosWorkers, _pid_of

__all__ = ["REPO", "Chaos", "ChaosConfig", "ChaosReport", "Decision", "LogReader", "main",
           "run_chaos"]


class Chaos(ChaosWorkers, ChaosInvariants):
    def __init__(self, config: ChaosConfig, workdir: Path, db: str | None = None) -> None:
        self.cfg = config
        self.workdir = workdir
        self.db: str | Path = db or workdir / "chaos.db"  # a SQLite file or a PostgreSQL URL
        self.log_path = workdir / "effects.log"
        self.rng = random.Random(config.seed)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.runs_held_at_kill: set[str] = set()
        self.born: dict[int, float] = {}
        self.paused: dict[int, float] = {}   # pid -> when it was SIGSTOPped
        self.resumed: dict[int, float] = {}  # pid -> wall time it was last continued
        self.ever_paused: set[int] = set()
        self.started = 0
        self.decisions: list[Decision] = []
        self.flags_per_step: Counter[tuple[str, str]] = Counter()
        self.abort = False
        self.log = LogReader(self.log_path)
        self.report = ChaosReport(config)

    # -- the human operator -----------------------------------------------------------------

    def _resolve_in_doubt(self, tether: Tether) -> None:
        waiting = [r for r in tether.store.list_runs(status="waiting", limit=1_000_000)
                   if r.options.get("in_doubt")]
        if not waiting:
            return
        looked_at = time.time()
        self.log.refresh()
        live = self._live_pids()
        for run in waiting:
            doubt = run.options["in_doubt"]
            key, step = doubt["key"], doubt["step"]
            events = tether.store.load_events(run.id)
            owner = _owner_of_last_start(events, key)
            flagged = [e for e in events if e.kind == "step_in_doubt" and e.key == key]
            flagged_at = flagged[-1].ts if flagged else time.time()
            pid = _pid_of(owner)
            owner_alive = pid in live
            if pid in self.paused:
                continue  # a stalled worker may still perform the step when it wakes up
            if owner_alive and time.time() - max(flagged_at, self.resumed.get(pid, 0.0)) < (
                    self.cfg.grace):
                continue  # the step may still be running in a live (lease-less) worker
            entries = self.log.effects.get((run.id, step), [])
            if entries:
                action, result = "skip", entries[0]["result"]
            else:
                action, result = "retry", None
            try:
                tether.resolve(run.id, action, result=result, key=key)
            except NotInDoubt:
                # The run left `waiting` meanwhile (a finished child woke it, see
                # test_chaos_regressions.py); it will stop at the same step again.
                self.report.resolve_refused += 1
                continue
            self.decisions.append(Decision(run.id, key, step, action, len(entries), flagged_at,
                                           looked_at, time.time(), owner_alive))
            self.flags_per_step[(run.id, key)] += 1
            if self.flags_per_step[(run.id, key)] == self.cfg.max_flags_per_step:
                history = [d.key for d in self.decisions if d.run_id == run.id]
                self.report.violations.append(
                    f"livelock: run {run.id} step {key} ({step}) was flagged in doubt "
                    f"{self.cfg.max_flags_per_step} times; the run's decisions so far: {history}")
                self.abort = True

    # -- the whole experiment ---------------------------------------------------------------
    def run(self) -> ChaosReport:
        cfg = self.cfg
        t0 = time.monotonic()
        tether = Tether(self.db)
        self.log_path.touch()
        submitted = 0
        monitor: Any = raw_connection(self.db)
        try:
            for _ in range(cfg.workers):
                self._spawn_worker()
            next_kill = time.monotonic() + self.rng.expovariate(1 / cfg.mean_kill_interval)
            next_human = time.monotonic()
            while True:
                now = time.monotonic()
                done = monitor.execute(
                    f"SELECT COUNT(*) FROM runs WHERE parent_id IS NULL AND status IN "
                    f"({','.join('?' * len(TERMINAL_STATUSES))})", tuple(TERMINAL_STATUSES),
                ).fetchone()[0]
                if done == cfg.trials or self.abort:
                    break
                while submitted < cfg.trials and submitted - done < cfg.in_flight:
                    tether.submit(chaos_agents.AGENT, {"seed": submitted},
                                  run_id=f"t{submitted:05d}")
                    submitted += 1
                if now - t0 > cfg.time_limit:
                    self.report.violations.append(
                        f"only {done}/{cfg.trials} trials finished within {cfg.time_limit}s")
                    break
                # Kills keep pace with the work (at most `kills_per_trial` per trial submitted so
                # far): on a loaded machine a fixed kill rate would mean ever more kills per
                # trial, each costing a lease expiry, and the test would never catch up.
                if now >= next_kill:
                    if self.report.kills < cfg.kills_per_trial * submitted:
                        self._kill_one(monitor)
                    else:
                        self.report.kills_skipped += 1
                    next_kill = now + self.rng.expovariate(1 / cfg.mean_kill_interval)
                for p in list(self.procs):  # a worker that died on its own is a finding
                    if p.poll() is not None:
                        self.procs.remove(p)
                        self.report.violations.append(
                            f"worker pid {p.pid} exited by itself with code {p.returncode} "
                            f"(see {self.workdir}/worker-*.err)")
                        self._spawn_worker()
                if now >= next_human:
                    self._resolve_in_doubt(tether)
                    next_human = now + 0.05
                time.sleep(0.01)
        finally:
            self._stop_workers()
            monitor.close()
            self.report.duration = time.monotonic() - t0
            self.report.workers_started = self.started
        tether.close()
        self.verify()
        return self.report


def _owner_of_last_start(events: list[Event], key: str) -> str:
    owner = ""
    found = ""
    for e in events:
        if e.kind in ("run_started", "run_resumed"):
            owner = e.data["worker"]
        elif e.kind == "step_started" and e.key == key:
            found = owner
    return found


def run_chaos(config: ChaosConfig, workdir: Path, db: str | None = None) -> ChaosReport:
    """`db`: a PostgreSQL URL to run on instead of a SQLite file in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Chaos(config, workdir, db).run()


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.runtime.chaos_harness [TRIALS]`: run once and print the report."""
    import tempfile

    args = list(sys.argv[1:] if argv is None else argv)
    cfg = ChaosConfig(trials=int(args[0]) if args else 200)
    for arg in args[1:]:  # field=value overrides, e.g. concurrency=4
        name, _, value = arg.partition("=")
        setattr(cfg, name, type(getattr(cfg, name))(value))
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-chaos-")))
        if os.environ.get("CHAOS_KEEP"):
            workdir = Path(os.environ["CHAOS_KEEP"])
        report = run_chaos(cfg, workdir)
        print(report.summary())
        for line in report.violations[:50]:
            print("VIOLATION:", line)


if __name__ == "__main__":
    main()
