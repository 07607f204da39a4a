"""The chaos harness's side-effect log reader and invariant checks (see `chaos_harness.py`).

`LogReader` indexes the fsync'd side-effect log the activities of `chaos_agents` append to;
`ChaosInvariants.verify` (a mixin of `chaos_harness.Chaos`) checks the journals in the store
against that log and the human's decisions once every trial has finished.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from tether.store import Event, open_store

from . import chaos_agents
from .chaos_report import ChaosConfig, ChaosReport, Decision
from .chaos_workers import _pid_of


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


class ChaosInvariants:
    """The checks run after the experiment (state initialised by `Chaos.__init__`)."""

    cfg: ChaosConfig
    db: str | Path  # a SQLite file or a PostgreSQL URL
    killed: set[int]
    runs_held_at_kill: set[str]
    ever_paused: set[int]
    decisions: list[Decision]
    abort: bool
    log: LogReader
    report: ChaosReport

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
                    # The commit is before `decided_at` (this host's clock, read once `resolve`
                    # returned) and at its event's time (the store's clock: the PostgreSQL
                    # server's as last read, which may differ from this host's a little)
                    committed = min([e.ts for e in journals[d.run_id]
                                     if e.kind == "step_resolved" and e.key == d.key
                                     and e.ts >= d.looked_at] + [d.decided_at])
                    if effects[0]["t"] < committed:
                        v.append(f"{d}: the human saw no effect, but one was logged at "
                                 f"{effects[0]['t']}, before the retry decision was committed "
                                 f"at {committed} (a late write by a live worker)")

