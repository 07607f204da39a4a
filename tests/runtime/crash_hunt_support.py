"""Support for the crash hunt (`test_crash_hunt_*.py`): agents, tools, a worker process, and a
lab that starts, SIGKILLs and restarts real worker processes on one SQLite journal.

The outside world is a *ledger*: a JSON-lines file outside the journal to which every side
effect appends one line naming a unique token (one `write(2)` of an `O_APPEND` descriptor, then
`fsync`: a SIGKILL leaves a line whole or absent). After recovery the tests count the tokens:
a duplicate is a side effect done twice, a gap is completed work lost.

Kills land at exact moments through *gates*: a tool calls `gate(name)` before and after its
effect; when the test created `GATES/<name>.hold`, the first process to reach the gate renames
it to `<name>.reached.<pid>` (so a replacement worker passes straight through) and blocks until
SIGKILLed (or until `<name>.release` appears). The test waits for the `reached` file and kills
that pid: the kill is inside the step, before or after its effect, by construction.

Agents and tools are in `crash_hunt_agents.py` (referenced as `MODULE:<name>`); workers run
`python -m tests.runtime.crash_hunt_support --db DB` (a bare `tether.Worker`) or `tether worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.runtime.crash_hunt_agents import (  # noqa: F401  (what the tests import from here)
    DELAY_ENV,
    GATES_ENV,
    LEDGER_ENV,
    MODULE,
    read_ledger,
    tool_ok,
)
from tether import Tether, Worker, open_store

REPO = Path(__file__).resolve().parents[2]
#: the worker process this module runs (`python -m`)
WORKER_MODULE = "tests.runtime.crash_hunt_support"


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Lab:
    """One SQLite journal, a ledger, gates, and the worker processes serving them."""

    def __init__(self, root: Path, *, lease_ttl: float = 1.0, db: str | None = None) -> None:
        """`db`: the journal's path or URL (default: a SQLite file under `root`)."""
        self.root = root
        self.db = db or str(root / "crash.db")
        self.ledger = root / "ledger.jsonl"
        self.gates = root / "gates"
        self.gates.mkdir(parents=True, exist_ok=True)
        self.lease_ttl = lease_ttl
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.env = {**os.environ, LEDGER_ENV: str(self.ledger), GATES_ENV: str(self.gates),
                    "TETHER_DB": self.db,
                    "PYTHONPATH": os.pathsep.join(
                        p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)}
        self.tether = Tether(self.db)

    # workers
    def worker(self, *, cli: bool = False, lease_ttl: float | None = None,
               concurrency: int = 64) -> subprocess.Popen[bytes]:
        ttl = str(lease_ttl or self.lease_ttl)
        if cli:
            cmd = [str(Path(sys.executable).parent / "tether"), "worker", "--db", self.db,
                   "--lease-ttl", ttl, "--poll", "0.05", "--concurrency", str(concurrency)]
        else:
            cmd = [sys.executable, "-m", WORKER_MODULE, "--db", self.db, "--lease-ttl", ttl,
                   "--concurrency", str(concurrency)]
        err = (self.root / f"worker-{len(self.procs)}.err").open("wb")
        proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=err, preexec_fn=_die_with_parent)
        err.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes] | int) -> None:
        pid = proc if isinstance(proc, int) else proc.pid
        os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            if p.pid == pid:
                p.wait()
        self.kills += 1

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                self.kill(p)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.tether.close()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "tether.cli", *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    # gates
    def arm(self, name: str) -> None:
        (self.gates / f"{name}.hold").touch()

    def release(self, name: str) -> None:
        (self.gates / f"{name}.release").touch()

    def reached(self, name: str, timeout: float = 20.0) -> int:
        """Wait until a worker blocks in gate `name`; its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = glob.glob(str(self.gates / f"{glob.escape(name)}.reached.*"))
            if found:
                return int(found[0].rsplit(".", 1)[1])
            self._check_workers()
            time.sleep(0.005)
        raise AssertionError(f"no worker reached gate {name!r} in {timeout}s; "
                             f"{self.describe()}")

    def marks(self, name: str) -> int:
        return len(glob.glob(str(self.gates / f"{glob.escape(name)}.*")))

    def settle(self, cond: Any, timeout: float) -> bool:
        """Wait up to `timeout` for `cond()`; whether it came true (no failure either way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.01)
        return bool(cond())

    # waiting on the journal
    def wait(self, run_id: str, *statuses: str, timeout: float = 20.0,
             in_doubt: bool | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.tether.get(run_id)
            if run.status in statuses and (
                    in_doubt is None or bool(run.options.get("in_doubt")) == in_doubt):
                return run
            self._check_workers()
            time.sleep(0.02)
        run = self.tether.get(run_id)
        raise AssertionError(f"run {run_id} is {run.status} ({run.reason}), not {statuses}; "
                             f"{self.describe()}")

    def wait_until(self, cond: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            self._check_workers()
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}; {self.describe()}")

    def _check_workers(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None and p.returncode != -signal.SIGKILL:
                err = (self.root / f"worker-{i}.err").read_text()
                raise AssertionError(f"worker {p.pid} exited by itself ({p.returncode}): {err}")

    def describe(self) -> str:
        runs = [(r.id, r.status, r.reason) for r in self.tether.runs(limit=50)]
        return f"runs: {runs}; ledger: {self.tokens()}"

    # the outside world
    def entries(self) -> list[dict[str, Any]]:
        return read_ledger(self.ledger)

    def tokens(self) -> Counter[str]:
        """How many times each token's effect was performed (deduplicated calls excluded)."""
        return Counter(e["token"] for e in self.entries() if not e.get("dedup"))

    def assert_exactly_once(self, expected: list[str]) -> None:
        counts = self.tokens()
        twice = sorted(t for t, n in counts.items() if n > 1)
        missing = sorted(t for t in expected if counts[t] == 0)
        extra = sorted(t for t in counts if t not in expected)
        assert not twice, f"side effects performed more than once: {twice} ({counts})"
        assert not missing, f"side effects lost: {missing}"
        assert not extra, f"side effects nobody asked for: {extra}"

    # the human operator
    def settle_in_doubt(self, run_id: str, token: str, tool_name: str = "send", *,
                        cli: bool = True) -> str:
        """Resolve `run_id`'s in-doubt step (a call of `tool_name` for `token`) as a careful
        human does, with the CLI (or `Tether.resolve`): --skip with its result if the ledger
        shows the effect, --retry otherwise. Returns the action."""
        action = "skip" if self.tokens()[token] else "retry"
        result = tool_ok(token, tool_name) if action == "skip" else None
        if not cli:
            self.tether.resolve(run_id, action, result=result)
        elif action == "skip":
            self.cli("resolve", run_id, "--skip", "--result", json.dumps(result))
        else:
            self.cli("resolve", run_id, "--retry")
        return action

    def settle_all(self, token_of: Any, tool_name: str = "send", *,
                   cli: bool = True) -> list[tuple[str, str]]:
        """`settle_in_doubt` every run waiting for a human; `token_of(run)` names the token of
        its in-doubt step. Returns (run id, action) per decision."""
        done = []
        for run in self.tether.runs(status="waiting", limit=1000):
            if run.options.get("in_doubt"):
                token = token_of(run)
                token, name = token if isinstance(token, tuple) else (token, tool_name)
                done.append((run.id, self.settle_in_doubt(run.id, token, name, cli=cli)))
        return done

    def finish_with_human(self, run_id: str, token_of: Any, timeout: float = 20.0,
                          tool_name: str = "send") -> tuple[Any, list[tuple[str, str]]]:
        """Act as the operator until `run_id` ends: every in-doubt run is settled as it appears.
        Returns the ended run and the decisions taken."""
        decisions: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            decisions += self.settle_all(token_of, tool_name)
            run = self.tether.get(run_id)
            if run.finished:
                return run, decisions
            self._check_workers()
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not end in {timeout}s; {self.describe()}")

    def in_doubt_owners(self, run_id: str) -> list[str]:
        """The worker (owner string) that journaled each in-doubt flag's step start."""
        owner, started, out = "", {}, []
        for e in self.tether.events(run_id):
            if e.kind in ("run_started", "run_resumed"):
                owner = e.data["worker"]
            elif e.kind == "step_started":
                started[e.key] = owner
            elif e.kind == "step_in_doubt":
                out.append(started[e.key])
        return out

    def lease_holders(self) -> set[int]:
        """The pids of the workers holding a lease now."""
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            owners = [o for (o,) in conn.execute("SELECT owner FROM leases")]
        finally:
            conn.close()
        return {int(o.split(":")[1]) for o in owners}

    def assert_no_silent_rerun(self, run_id: str) -> None:
        """No non-idempotent step of `run_id` was started again without a human's --retry."""
        starts: Counter[str] = Counter()
        retries: Counter[str] = Counter()
        for e in self.tether.events(run_id):
            if e.kind == "step_started" and not e.data.get("idempotent"):
                starts[str(e.key)] += 1
            elif e.kind == "step_resolved" and e.data["action"] == "retry":
                retries[str(e.key)] += 1
        silent = {k: n for k, n in starts.items() if n > 1 + retries[k]}
        assert not silent, f"run {run_id}: steps started again without a decision: {silent}"

    def step_events(self, run_id: str, kind: str, name: str | None = None) -> list[Any]:
        return [e for e in self.tether.events(run_id)
                if e.kind == kind and (name is None or e.name == name)]


def write_lock(db: str) -> sqlite3.Connection:
    """Hold the journal's write lock (a `BEGIN IMMEDIATE` transaction) until `.rollback()`:
    every commit of a worker waits for it, so a kill lands while the worker commits."""
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


# -- the worker process -----------------------------------------------------------------------
async def _serve(db: str, lease_ttl: float, poll: float, concurrency: int) -> None:
    worker = Worker(open_store(db), lease_ttl=lease_ttl, poll_interval=poll,
                    concurrency=concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.serve(stop=stop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(_serve(args.db, args.lease_ttl, args.poll, args.concurrency))


if __name__ == "__main__":
    main()
