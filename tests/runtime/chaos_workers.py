"""The chaos harness's worker processes: start them, SIGKILL or SIGSTOP them, stop them.

`ChaosWorkers` is a mixin of `chaos_harness.Chaos`, which owns the state declared below.
Workers run `tests.runtime.chaos_worker` (or `tether worker`) on the trial database, with the
side-effect log named in `chaos_agents.LOG_ENV`.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import chaos_agents
from .chaos_report import ChaosConfig, ChaosReport

REPO = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    """In the forked child: get SIGKILLed if the harness dies (a killed test run must not leave
    workers behind). Linux only; elsewhere the harness's own cleanup has to do."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pid_of(owner: str) -> int:
    try:
        return int(owner.split(":")[1])
    except (IndexError, ValueError):
        return -1


class ChaosWorkers:
    """Worker-process management for `Chaos` (state initialised by `Chaos.__init__`)."""

    cfg: ChaosConfig
    workdir: Path
    db: str | Path  # a SQLite file or a PostgreSQL URL
    log_path: Path
    rng: random.Random
    procs: list[subprocess.Popen[bytes]]
    killed: set[int]
    runs_held_at_kill: set[str]
    born: dict[int, float]
    paused: dict[int, float]
    resumed: dict[int, float]
    ever_paused: set[int]
    started: int
    report: ChaosReport

    # -- workers --------------------------------------------------------------------------
    def _command(self) -> list[str]:
        common = ["--db", str(self.db), "--lease-ttl", str(self.cfg.lease_ttl),
                  "--poll", str(self.cfg.poll), "--concurrency", str(self.cfg.concurrency)]
        if self.cfg.worker_cmd == "cli":
            return [str(Path(sys.executable).parent / "tether"), "worker", *common]
        return [sys.executable, "-m", "tests.runtime.chaos_worker", *common]

    def _spawn_worker(self) -> None:
        env = dict(os.environ)
        env[chaos_agents.LOG_ENV] = str(self.log_path)
        # REPO last: a PYTHONPATH given by the caller (e.g. another checkout of tether) wins.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO)) if p)
        self.started += 1
        err = (self.workdir / f"worker-{self.started}.err").open("wb")
        proc = subprocess.Popen(self._command(), cwd=self.workdir, env=env,
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=_die_with_parent)
        err.close()
        self.procs.append(proc)
        self.born[proc.pid] = time.monotonic()

    def _kill_one(self, monitor: Any) -> None:  # sqlite3 or pg_support.raw_connection
        now = time.monotonic()
        live = [p for p in self.procs if p.poll() is None and p.pid not in self.paused
                and now - self.born[p.pid] >= self.cfg.min_age]
        # Half the kills aim at workers that hold runs; the rest pick any worker that has been
        # up for `min_age` (killing replacements while they import tests nothing, and under
        # load it would starve the system of workers). Which one, and when, stays random.
        holders = {_pid_of(o) for (o,) in monitor.execute("SELECT DISTINCT owner FROM leases")}
        busy = [p for p in self.procs
                if p.pid in holders and p.poll() is None and p.pid not in self.paused]
        pool = busy if busy and self.rng.random() < self.cfg.aim else live
        if not pool:
            self.report.kills_skipped += 1
            return
        victim = self.rng.choice(pool)
        if self.rng.random() < self.cfg.pause_fraction:
            # A stall (GC pause, VM freeze, partition), not a death: the worker outlives its
            # leases, others take its runs over, then it wakes up and carries on. Fencing must
            # keep its writes out; its running activities still act (the human must wait).
            # The SIGCONT comes from a timer thread: the stalled worker may hold SQLite's write
            # lock, and the harness's own writes (resolve, submit) would wait for it.
            victim.send_signal(signal.SIGSTOP)
            self.paused[victim.pid] = now
            self.ever_paused.add(victim.pid)
            self.report.pauses += 1
            timer = threading.Timer(self.cfg.lease_ttl * self.rng.uniform(1.2, 2.5),
                                    self._continue, (victim,))
            timer.daemon = True
            timer.start()
            return
        held = monitor.execute("SELECT run_id FROM leases WHERE owner LIKE ?",
                               (f"%:{victim.pid}:%",)).fetchall()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.killed.add(victim.pid)
        self.procs.remove(victim)
        self.report.kills += 1
        if held:
            self.report.kills_holding_runs += 1
        self.runs_held_at_kill.update(r[0] for r in held)
        self._spawn_worker()

    def _continue(self, proc: subprocess.Popen[bytes]) -> None:
        if self.paused.pop(proc.pid, None) is not None:
            self.resumed[proc.pid] = time.time()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)

    def _stop_workers(self) -> None:
        for p in list(self.procs):
            self._continue(p)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.report.violations.append(f"worker {p.pid} ignored SIGTERM for 15s")
        self.procs.clear()

    def _live_pids(self) -> set[int]:
        return {p.pid for p in self.procs if p.poll() is None}
