"""The chaos harness's configuration and report (see `chaos_harness.py`).

`ChaosConfig` holds the knobs of one experiment, `Decision` one answer of the simulated human
operator to an in-doubt step, `ChaosReport` the figures and the list of invariant violations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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
