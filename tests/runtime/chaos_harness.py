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
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tether import Tether
from tether.runtime import NotInDoubt
from tether.store import TERMINAL_STATUSES, Event, open_store

from . import chaos_agents

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ChaosConfig:
    trials: int = 200
    workers: int = 3
    concurrency: int = 8           # runs per worker process at a time
    in_flight: int = 24            # trials submitted but not finished (a closed-loop workload)
    lease_ttl: float = 1.0
    poll: float = 0.05
    mean_kill_interval: float = 0.05  # seconds between chaos events (exponential)
    kills_per_trial: float = 0.75  # ...but no more kills than this per trial submitted
    min_age: float = 0.5           # seconds a worker lives before it may be killed (unless busy)
    aim: float = 0.5               # chance a kill picks among workers holding runs, not any
    grace: float = 1.0             # human waits this long if the step's worker is still alive
    time_limit: float = 160.0      # give up (and report) after this long
    seed: int = 1
    worker_cmd: str = "script"     # "script" (chaos_worker.py) or "cli" (`tether worker`)
    # Share of chaos events that SIGSTOP a worker past its lease (1.2-2.5 TTLs) instead of killing
    # it. Off by default: a stalled worker can re-claim its own run and execute it twice (see
    # test_worker_does_not_reclaim_a_run_it_is_still_executing in test_chaos_regressions.py).
    pause_fraction: float = 0.0
    max_flags_per_step: int = 5    # more human decisions than this for one step: a livelock


@dataclass
class Decision:
    run_id: str
    key: str
    step: str
    action: str
    entries_before: int
    flagged_at: float
    looked_at: float
    decided_at: float
    owner_alive: bool


@dataclass
class ChaosReport:
    config: ChaosConfig
    trials: int = 0
    runs: int = 0
    steps_completed: int = 0
    kills: int = 0
    kills_mid_step: int = 0
    interrupted_steps: int = 0
    trials_interrupted: int = 0
    kills_holding_runs: int = 0
    kills_skipped: int = 0
    resolve_refused: int = 0
    pauses: int = 0
    late_effects: int = 0
    trials_hit: int = 0
    in_doubt_flags: int = 0
    resolved_skip: int = 0
    resolved_retry: int = 0
    flags_owner_alive: int = 0
    idempotent_reexecutions: int = 0
    dedup_hits: int = 0
    log_entries: int = 0
    workers_started: int = 0
    duration: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    integrity: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.trials} trials ({self.runs} runs incl. children, {self.steps_completed} "
            f"completed steps) in {self.duration:.1f}s; {self.kills} SIGKILLs, "
            f"{self.kills_holding_runs} while holding runs, {self.kills_mid_step} mid-step "
            f"({self.interrupted_steps} steps interrupted in {self.trials_interrupted} trials; "
            f"{self.trials_hit} trials had a run on a killed worker); "
            f"{self.in_doubt_flags} in-doubt flags (skip {self.resolved_skip}, retry "
            f"{self.resolved_retry}, {self.flags_owner_alive} with the step's worker alive, "
            f"{self.resolve_refused} resolutions refused); {self.pauses} SIGSTOP pauses "
            f"({self.late_effects} effects by woken workers after an in-doubt flag); "
            f"{self.idempotent_reexecutions} idempotent re-executions "
            f"({self.dedup_hits} deduplicated by key); statuses {dict(self.statuses)}; "
            f"integrity {'ok' if not self.integrity else self.integrity}; "
            f"{len(self.violations)} violations"
        )


class LogReader:
    """Incremental reader of the side-effect log, indexed by (run, step)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._tail = b""
        self.effects: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.dedups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.lines = 0

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        for line in lines:
            entry = orjson.loads(line)
            self.lines += 1
            target = self.dedups if entry.get("dedup") else self.effects
            target[(entry["run"], entry["step"])].append(entry)


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


class Chaos:
    def __init__(self, config: ChaosConfig, workdir: Path) -> None:
        self.cfg = config
        self.workdir = workdir
        self.db = workdir / "chaos.db"
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

    def _kill_one(self, monitor: sqlite3.Connection) -> None:
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

    # -- the human operator -----------------------------------------------------------------
    def _live_pids(self) -> set[int]:
        return {p.pid for p in self.procs if p.poll() is None}

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
        monitor = sqlite3.connect(self.db, timeout=30)
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

    # -- the invariants ---------------------------------------------------------------------
    def verify(self) -> None:
        rep, v = self.report, self.report.violations
        store = open_store(self.db)
        try:
            rep.integrity = store.integrity_check()
            if rep.integrity:
                v.append(f"PRAGMA integrity_check: {rep.integrity}")
            runs = store.list_runs(limit=10_000_000)
            journals = {r.id: store.load_events(r.id) for r in runs}
        finally:
            store.close()
        self.log.refresh()
        rep.runs = len(runs)
        rep.statuses = Counter(r.status for r in runs)
        rep.log_entries = sum(len(x) for x in self.log.effects.values())
        rep.dedup_hits = sum(len(x) for x in self.log.dedups.values())
        roots = {r.id: r for r in runs if r.parent_id is None}
        rep.trials = len(roots)
        if rep.trials != self.cfg.trials and not self.abort:
            v.append(f"{rep.trials} root runs in the store, expected {self.cfg.trials}")
        unfinished = [r for r in runs if not r.finished]
        if unfinished:
            v.append(f"{len(unfinished)} runs never finished "
                     f"({dict(Counter(r.status for r in unfinished))}), e.g. "
                     f"{[(r.id, r.status, r.reason) for r in unfinished[:3]]}")
        for r in runs:
            if r.finished and r.status != "succeeded":
                v.append(f"run {r.id} ended {r.status}: {r.error or r.reason}")
        for run_id, r in roots.items():
            if r.status == "succeeded":
                expected = chaos_agents.expected_result(int(r.input["seed"]))
                if r.result != expected:
                    v.append(f"run {run_id} result {r.result!r} != expected {expected!r}")

        done_steps: set[tuple[str, str]] = set()
        interrupted_by: set[int] = set()
        hit_roots: set[str] = set()
        by_id = {r.id: r for r in runs}
        for run_id, events in journals.items():
            root = by_id[run_id].root_id or run_id
            owner = ""
            steps: dict[str, list[Event]] = defaultdict(list)
            owner_at: dict[int, str] = {}
            for e in events:
                if e.kind in ("run_started", "run_resumed"):
                    owner = e.data["worker"]
                owner_at[e.seq] = owner
                if e.key is not None and e.kind.startswith("step_"):
                    steps[e.key].append(e)
            for key, evs in steps.items():
                name = evs[0].name or ""
                where = f"run {run_id} step {key} ({name})"
                starts = [e for e in evs if e.kind == "step_started"]
                idem = bool(starts and starts[0].data.get("idempotent"))
                completed = any(e.kind == "step_completed" for e in evs)
                skipped = any(e.kind == "step_resolved" and e.data["action"] == "skip"
                              for e in evs)
                if completed:
                    rep.steps_completed += 1
                if completed or skipped:
                    done_steps.add((run_id, name))
                if any(e.kind == "step_failed" for e in evs):
                    v.append(f"{where}: step_failed in the journal: {evs}")
                # interrupted attempts: a start not directly followed by its outcome
                for i, e in enumerate(evs):
                    if e.kind == "step_started" and (
                        i + 1 == len(evs) or evs[i + 1].kind not in ("step_completed",
                                                                     "step_failed")
                    ):
                        rep.interrupted_steps += 1
                        hit_roots.add(root)
                        pid = _pid_of(owner_at[e.seq])
                        if pid in self.killed:
                            interrupted_by.add(pid)
                effects = self.log.effects.get((run_id, name), [])
                if idem:
                    rep.idempotent_reexecutions += max(0, len(starts) - 1)
                    if (completed or skipped) and len(effects) != 1:
                        v.append(f"{where}: idempotent step completed but the log holds "
                                 f"{len(effects)} effects (want exactly 1): {effects}")
                    want_key = f"{run_id}:{evs[0].seq}"
                    if any(x["key"] != want_key for x in effects):
                        v.append(f"{where}: effect with idempotency key other than {want_key}: "
                                 f"{effects}")
                    continue
                # non-idempotent: never twice, and never re-run without a human's retry
                if len(effects) > 1:
                    v.append(f"{where}: non-idempotent step executed {len(effects)} times: "
                             f"{effects}")
                if (completed or skipped) and len(effects) != 1:
                    v.append(f"{where}: completed but the log holds {len(effects)} effects")
                for i, e in enumerate(evs):
                    if e.kind != "step_started" or i == 0:
                        continue
                    since_prev = evs[: i][::-1]
                    last_start = next(j for j, x in enumerate(since_prev)
                                      if x.kind == "step_started")
                    if not any(x.kind == "step_resolved" and x.data["action"] == "retry"
                               for x in since_prev[:last_start]):
                        v.append(f"{where}: re-started (event {e.seq}) without a retry decision")
                for i, e in enumerate(evs):
                    outcome = evs[i + 1].kind if i + 1 < len(evs) else None
                    if e.kind == "step_started" and by_id[run_id].finished and outcome not in (
                            "step_completed", "step_failed", "step_in_doubt"):
                        v.append(f"{where}: attempt at event {e.seq} was interrupted but never "
                                 f"flagged in doubt (next: {outcome})")
                flags = [e for e in evs if e.kind == "step_in_doubt"]
                retries = [e for e in evs if e.kind == "step_resolved"
                           and e.data["action"] == "retry"]
                for flag in flags:
                    for x in effects:
                        if x["t"] > flag.ts and not any(flag.ts < r.ts < x["t"] for r in retries):
                            if x["pid"] in self.ever_paused:
                                # a stalled worker woke up and finished the step it had begun:
                                # the lease hazard the human's caution is for, not a runtime fault
                                rep.late_effects += 1
                                continue
                            v.append(f"{where}: effect at {x['t']} after the in-doubt flag at "
                                     f"{flag.ts} with no retry decision in between")
        rep.kills_mid_step = len(interrupted_by)
        rep.trials_interrupted = len(hit_roots)
        rep.trials_hit = len({(by_id[r].root_id or r) for r in self.runs_held_at_kill
                              if r in by_id})

        for (run_id, name), effects in self.log.effects.items():
            if (run_id, name) not in done_steps and by_id[run_id].finished:
                v.append(f"effect {effects} of run {run_id} step {name} matches no completed or "
                         "skipped step in the journal")

        rep.in_doubt_flags = len(self.decisions)
        rep.resolved_skip = sum(d.action == "skip" for d in self.decisions)
        rep.resolved_retry = sum(d.action == "retry" for d in self.decisions)
        rep.flags_owner_alive = sum(d.owner_alive for d in self.decisions)
        flagged_events = sum(1 for evs in journals.values() for e in evs
                             if e.kind == "step_in_doubt")
        if flagged_events < len(self.decisions):
            v.append(f"{len(self.decisions)} decisions but only {flagged_events} in-doubt events")
        for d in self.decisions:
            if by_id[d.run_id].status != "succeeded":
                continue  # the checks below need the retried step to have run again
            effects = self.log.effects.get((d.run_id, d.step), [])
            if d.action == "skip" and len(effects) != 1:
                v.append(f"{d}: skipped (effect seen) but the log now holds {len(effects)}")
            if d.action == "retry":
                if len(effects) != 1:
                    v.append(f"{d}: retried but the log now holds {len(effects)} effects")
                else:
                    # The retry can only run once the decision is committed; an effect logged
                    # between the human's look at the log and that commit came from elsewhere.
                    committed = min((e.ts for e in journals[d.run_id]
                                     if e.kind == "step_resolved" and e.key == d.key
                                     and e.ts >= d.looked_at), default=d.decided_at)
                    if effects[0]["t"] < committed:
                        v.append(f"{d}: the human saw no effect, but one was logged at "
                                 f"{effects[0]['t']}, before the retry decision was committed "
                                 f"at {committed} (a late write by a live worker)")


def _owner_of_last_start(events: list[Event], key: str) -> str:
    owner = ""
    found = ""
    for e in events:
        if e.kind in ("run_started", "run_resumed"):
            owner = e.data["worker"]
        elif e.kind == "step_started" and e.key == key:
            found = owner
    return found


def run_chaos(config: ChaosConfig, workdir: Path) -> ChaosReport:
    workdir.mkdir(parents=True, exist_ok=True)
    return Chaos(config, workdir).run()


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
