"""Support for the PostgreSQL crash hunt (`test_pg_crash_hunt_*.py`): a throwaway PostgreSQL
server (and PgBouncer) of the test's own, a lab of real worker processes on it, a mixed workload
of runs and the operator that sees it through.

Why a server of its own: these tests restart the server, hold its row locks and freeze its
clients; the shared one (`make postgres`, port 55432) serves every other test. Each server is an
`initdb` in a temporary directory on a free port (as `mk/postgres.mk` does, as the `postgres` user
when run as root), stopped and removed afterwards.

The rest is the SQLite crash hunt's (tests/runtime/crash_hunt_support.py): side effects append a
unique token to a ledger file (O_APPEND + fsync), gates block a tool before or after its effect,
and the test plays the operator (signals, approvals, in-doubt steps settled from the ledger).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import OperationalError

from tests.runtime.crash_hunt_support import DELAY_ENV, MODULE, Lab
from tests.store.pg_private import PrivateBouncer, PrivatePg, free_port  # noqa: F401
from tether.store import StoreError


# -- the fixtures every test_pg_crash_hunt_* module imports ----------------------------------
@pytest.fixture(scope="module", name="server")
def server_fixture() -> Iterator[PrivatePg]:
    """A PostgreSQL server of the importing module's own."""
    pg = PrivatePg()
    yield pg
    pg.close()


@pytest.fixture(name="lab")
def lab_fixture(server: PrivatePg, tmp_path: Path,
                request: pytest.FixtureRequest) -> Iterator[PgLab]:
    """A lab on a fresh database of `server`; a module's `WORKER_DELAY_MS` slows its workers'
    steps (`DELAY_ENV`)."""
    lab = PgLab(tmp_path, server.url(server.new_database()))
    delay = getattr(request.module, "WORKER_DELAY_MS", None)
    if delay is not None:
        lab.env[DELAY_ENV] = str(delay)
    yield lab
    lab.close()


# -- the lab ---------------------------------------------------------------------------------
class PgLab(Lab):
    """The crash hunt's lab (workers, gates, ledger, operator) on a PostgreSQL URL."""

    def __init__(self, root: Path, url: str, *, lease_ttl: float = 1.0,
                 monitor_url: str | None = None) -> None:
        super().__init__(root, lease_ttl=lease_ttl, db=url)
        self.monitor_url = monitor_url or url  # straight to the server (not the pooler)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.monitor_url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def lease_holders(self) -> set[int]:
        try:
            owners = [o for (o,) in self.sql("SELECT owner FROM leases")]
        except Exception:  # the server restarting: nobody to aim at now
            return set()
        return {int(o.split(":")[1]) for o in owners}

    def all_connected(self, port: int) -> bool:
        """Whether every live worker process has sessions open to the server on `port` (it
        opened its store: a worker that cannot open it at all exits, for its supervisor to
        start it again, and this harness is no supervisor)."""
        return all(_sessions(p.pid, port) for p in self.alive())

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def describe(self) -> str:
        try:
            runs = [(r.id, r.status, r.reason) for r in self.tether.runs(limit=100)
                    if not r.finished]
        except Exception as exc:
            runs = [("?", "unreadable", str(exc))]
        return f"unfinished runs: {runs}; kills {self.kills}"

    # journal invariants ----------------------------------------------------------------------
    def journal_violations(self, run_id: str) -> list[str]:
        """What two workers committing for one run at once would leave: a seq gap, an effect
        completed twice, a wait answered twice, a run ended twice."""
        events = self.tether.events(run_id)
        out = []
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            out.append(f"{run_id}: seqs {seqs}")
        once = Counter((e.kind, str(e.key)) for e in events if e.kind in (
            "step_completed", "child_spawned", "child_completed", "timer_fired",
            "signal_received", "timer_started"))
        out += [f"{run_id}: {k} {n} times" for k, n in once.items() if n > 1]
        ends = [e.kind for e in events if e.kind in ("run_completed", "run_failed",
                                                      "run_cancelled", "run_halted")]
        if len(ends) > 1:
            out.append(f"{run_id}: ended {ends}")
        return out


def _sessions(pid: int, port: int) -> set[int]:
    """The socket inodes of process `pid` connected to 127.0.0.1:`port` (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    found = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            cols = line.split()
            if cols[2] == f"0100007F:{port:04X}" and cols[3] == "01" and int(cols[9]) in inodes:
                found.add(int(cols[9]))
    return found


def frozen_then_thawed(lab: PgLab, where: str) -> tuple[str, int, int]:
    """One run of three sends; its worker is frozen at gate `where` of the second send (a
    SIGSTOP, as a VM paused or a process stalled in swap) past its lease, a second worker
    takes the run over; then the first is thawed. Returns (run id, frozen pid, other pid)."""
    run_id = lab.tether.submit(f"{MODULE}:pipeline", {"tokens": ["z1", "z2", "z3"]})
    lab.arm(f"z2.{where}")
    first = lab.worker()
    assert lab.reached(f"z2.{where}") == first.pid
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = lab.worker()
        # taken over by the second worker: its run_resumed is in the journal
        lab.wait_until(lambda: any(e.kind == "run_resumed" for e in lab.tether.events(run_id)),
                       "the second worker to take the run over", timeout=20)
        (resumed,) = [e for e in lab.tether.events(run_id) if e.kind == "run_resumed"]
        assert int(resumed.data["worker"].split(":")[1]) == second.pid
        # the step was started by the frozen worker and never completed: in doubt for a human
        run = lab.wait(run_id, "waiting", in_doubt=True)
        assert run.options["in_doubt"]["step"] == "tool:send"
        events_before = len(lab.tether.events(run_id))
        lab.release(f"z2.{where}")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    return run_id, first.pid, events_before



# -- a mixed workload ------------------------------------------------------------------------
class Workload:
    """Root runs of the crash hunt's agents: pipelines, signals, timers, children, approvals.
    `expected` lists every token its effects write (each exactly once in the end)."""

    def __init__(self, lab: PgLab, *, pipelines: int, signalled: int, timed: int,
                 parents: int, governed: int, prefix: str = "w") -> None:
        self.lab = lab
        self.roots: dict[str, tuple[str, dict[str, Any]]] = {}
        self.expected: list[str] = []
        self.results: dict[str, Any] = {}
        self.prefix = prefix
        self.pipelines = 0
        t = lab.tether
        self.add_pipelines(pipelines)
        for n in range(signalled):
            tag = f"{prefix}s{n}"
            rid = t.submit(f"{MODULE}:signalled", {"tag": tag})
            toks = [f"{tag}-1", f"{tag}-2-P", f"{tag}-3-Q"]
            self._add(rid, "signalled", {"tag": tag}, toks,
                      {"out": [f"did {x}" for x in toks], "payloads": ["P", "Q"]})
        for n in range(timed):
            tag = f"{prefix}t{n}"
            rid = t.submit(f"{MODULE}:timed", {"tag": tag, "sleep": 0.6})
            self._add(rid, "timed", {"tag": tag}, [f"{tag}-1", f"{tag}-2"], None)
        for n in range(parents):
            tag = f"{prefix}c{n}"
            rid = t.submit(f"{MODULE}:parent", {"tag": tag, "children": 2})
            toks = [f"{tag}-p0", f"{tag}-c0", f"{tag}-c1", f"{tag}-pz"]
            self._add(rid, "parent", {"tag": tag}, toks, {
                "first": f"did {tag}-p0", "children": [f"did {tag}-c0", f"did {tag}-c1"],
                "last": f"did {tag}-pz"})
        self.governed = governed
        if governed:
            self._approver()
        for n in range(governed):
            tag = f"{prefix}g{n}"
            rid = t.submit(f"{MODULE}:governed", {"tag": tag}, guards=f"{MODULE}:GUARDS")
            self._add(rid, "governed", {"tag": tag}, [f"{tag}-1", f"refund-{tag}", f"{tag}-2"],
                      {"a": f"did {tag}-1", "refund": f"REFUNDED 250.0 for {tag}",
                       "refund_ok": True, "b": f"did {tag}-2"})
        self.signalled: set[tuple[str, str]] = set()
        self.approved: set[str] = set()
        self.decisions: Counter[str] = Counter()

    def add_pipelines(self, count: int) -> None:
        """`count` more pipelines (three sends each) as roots of the workload."""
        for n in range(self.pipelines, self.pipelines + count):
            tokens = [f"{self.prefix}p{n}-{i}" for i in range(3)]
            rid = self.lab.tether.submit(f"{MODULE}:pipeline", {"tokens": tokens})
            self._add(rid, "pipeline", {"tokens": tokens}, tokens, [f"did {x}" for x in tokens])
        self.pipelines += count

    def _add(self, rid: str, kind: str, inp: dict[str, Any], tokens: list[str],
             result: Any) -> None:
        self.roots[rid] = (kind, inp)
        self.expected += tokens
        self.results[rid] = result

    def _approver(self) -> None:
        lab = self.lab
        lab.cli("approvals", "--keygen", str(lab.root / "alice"))
        (lab.root / "approvers.yaml").write_text(
            json.dumps({"alice": (lab.root / "alice.pub").read_text()}))
        lab.env["TETHER_APPROVERS"] = str(lab.root / "approvers.yaml")

    # the operator ----------------------------------------------------------------------------
    def _in_doubt_token(self, run: Any) -> tuple[str, str, Any]:
        """(token, tool, the result a --skip journals) of `run`'s in-doubt step."""
        key = str(run.options["in_doubt"]["key"])
        step = run.options["in_doubt"]["step"]
        if run.parent_id:  # a parent's `child`
            token = run.input["token"]
            return token, "send", _ok(token)
        kind, inp = self.roots[run.id]
        if kind == "pipeline":
            token = inp["tokens"][int(key) - 1]
        elif kind == "signalled":
            token = {"1": f"{inp['tag']}-1", "3": f"{inp['tag']}-2-P",
                     "5": f"{inp['tag']}-3-Q"}[key]
        elif kind == "timed":
            token = {"1": f"{inp['tag']}-1", "5": f"{inp['tag']}-2"}[key]
        elif kind == "parent":
            token = {"1": f"{inp['tag']}-p0", "5": f"{inp['tag']}-pz"}[key]
        elif step == "tool:refund":
            tag = inp["tag"]
            return f"refund-{tag}", "refund", {"tool": "refund", "ok": True,
                                               "output": f"REFUNDED 250.0 for {tag}",
                                               "error": None}
        else:  # governed's sends: the first before the refund, the second after it
            refunded = any(e.kind == "step_completed" and e.name == "tool:refund"
                           for e in self.lab.tether.events(run.id))
            token = f"{inp['tag']}-2" if refunded else f"{inp['tag']}-1"
        return token, "send", _ok(token)

    def operate(self) -> None:
        """One round of the operator: answer signals, approve refunds, settle in-doubt steps
        from the ledger (--skip with its result when the effect is there, else --retry)."""
        t = self.lab.tether
        for run in t.runs(status="waiting", limit=1000):
            if run.options.get("in_doubt"):
                token, _tool, result = self._in_doubt_token(run)
                if self.lab.tokens()[token]:
                    t.resolve(run.id, "skip", result=result)
                    self.decisions["skip"] += 1
                else:
                    t.resolve(run.id, "retry")
                    self.decisions["retry"] += 1
                continue
            if run.id in self.roots and self.roots[run.id][0] == "signalled":
                for name, payload in (("go", "P"), ("go2", "Q")):
                    if (run.id, name) not in self.signalled and \
                            name in t.awaited_signals(run.id):
                        t.signal(run.id, name, payload)
                        self.signalled.add((run.id, name))
            if (run.id in self.roots and self.roots[run.id][0] == "governed"
                    and run.id not in self.approved and "approval" in (run.reason or "")):
                done = self.lab.cli("approve", f"{run.id}.a1", "--reason", "ok", "--approver",
                                    "alice", "--key", str(self.lab.root / "alice.key"),
                                    check=False)
                if done.returncode == 0:  # else (the server away) again at the next round
                    self.approved.add(run.id)

    def unfinished(self) -> int:
        """How many roots have not ended yet."""
        return sum(not self.lab.tether.get(r).finished for r in self.roots)

    def check(self) -> None:
        """Every root succeeded with the uninterrupted result, every effect exactly once, no
        step started again without a human's --retry, every journal consistent."""
        t = self.lab.tether
        problems = []
        for rid, (kind, _inp) in self.roots.items():
            run = t.get(rid)
            if run.status != "succeeded":
                problems.append(f"{rid} ({kind}) {run.status}: {run.reason} {run.error}")
            elif kind == "timed":
                if run.result["out"] != [f"did {x}" for x in self.expected_of(rid)]:
                    problems.append(f"{rid}: {run.result}")
            elif run.result != self.results[rid]:
                problems.append(f"{rid}: {run.result} != {self.results[rid]}")
        assert not problems, problems
        self.lab.assert_exactly_once(self.expected)
        every = [r.id for r in t.runs(limit=10_000)]
        violations = []
        for rid in every:
            self.lab.assert_no_silent_rerun(rid)
            violations += self.lab.journal_violations(rid)
        assert not violations, violations
        assert len(self.lab.sql("SELECT 1 FROM leases")) == 0, "a finished run holds a lease"

    def expected_of(self, rid: str) -> list[str]:
        tag = self.roots[rid][1]["tag"]
        return [f"{tag}-1", f"{tag}-2"]


def _ok(token: str) -> dict[str, Any]:
    return {"tool": "send", "ok": True, "output": f"did {token}", "error": None}


def hunt(lab: PgLab, work: Workload, *, workers: int, kills: int, seed: int, timeout: float,
         on_tick: Any = None, hold: Any = None) -> dict[str, Any]:
    """Serve `work` with `workers` worker processes, SIGKILLing one that holds a lease (a
    random moment after it was seen holding one) `kills` times, each replaced at once; the
    operator acts meanwhile. Returns counts. `on_tick(elapsed)` is called every round; while
    the server is away (a restart) the operator's reads fail and it tries again. A worker that
    exits by itself fails the test.

    Self-pacing: until every planned kill landed and `hold()` (if given) is false, the workload
    grows (`workers` more pipelines whenever fewer than that many roots are left), so one that
    runs faster than the kills (a quiet machine, a lucky seed) still meets all of them; the
    pipelines added are checked like the rest."""
    rng = random.Random(seed)
    for _ in range(workers):
        lab.worker()
    kill_at: dict[int, float] = {}
    started = time.monotonic()
    deadline = started + timeout
    outages = added = 0
    while time.monotonic() < deadline:
        lab._check_workers()
        if on_tick is not None:
            on_tick(time.monotonic() - started)
        try:
            left = work.unfinished()
            if lab.kills < kills or (hold is not None and hold()):
                if left < workers:
                    work.add_pipelines(workers)
                    added += workers
                    continue
            elif not left:
                break
            _round(lab, work, kills, rng, kill_at)
        except (StoreError, OperationalError):  # the server restarting
            outages += 1
            time.sleep(0.1)
            continue
        time.sleep(0.03)
    else:
        raise AssertionError(f"the workload did not end in {timeout}s; {lab.describe()}")
    return {"kills": lab.kills, "seconds": round(time.monotonic() - started, 1),
            "operator_outages": outages, "pipelines_added": added, **work.decisions}


def _round(lab: PgLab, work: Workload, kills: int, rng: random.Random,
           kill_at: dict[int, float]) -> None:
    if lab.kills < kills:
        holders = lab.lease_holders()
        for w in lab.alive():
            if w.pid in holders and w.pid not in kill_at:
                kill_at[w.pid] = time.monotonic() + rng.uniform(0.0, 0.4)
        for w in [w for w in lab.alive() if kill_at.get(w.pid, 1e18) <= time.monotonic()]:
            lab.kill(w)
            lab.worker()
    work.operate()


# -- a worker whose host clock steps ----------------------------------------------------------
SKEW_FILE_ENV = "PG_CRASH_HUNT_SKEW_FILE"


def skewed_worker(lab: PgLab, skew_file: Path) -> subprocess.Popen[bytes]:
    """A worker process (the crash hunt's) whose wall clock (`time.time`) is the host's plus
    the seconds written in `skew_file`, read again as it changes: a host whose clock is
    stepped (an NTP correction, a VM resumed, an operator's `date -s`) while the worker runs.
    The monotonic clock is left alone, as a real step leaves it. (libfaketime's file mode
    steps the monotonic clock too unless told not to, and then fails every sleep here.)"""
    skew_file.write_text("0")
    err = (lab.root / f"worker-{len(lab.procs)}.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.pg_crash_hunt_support", "--db", lab.db,
         "--lease-ttl", str(lab.lease_ttl)],
        cwd=lab.root, env={**lab.env, SKEW_FILE_ENV: str(skew_file)},
        stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    lab.procs.append(proc)
    return proc


def _skew_the_clock(path: str) -> None:
    real = time.time
    state = {"read_at": -1.0, "skew": 0.0}

    def skewed() -> float:
        now = time.monotonic()
        if now - state["read_at"] > 0.02:
            with contextlib.suppress(OSError, ValueError):
                state["skew"] = float(Path(path).read_text().strip() or 0)
            state["read_at"] = now
        return real() + state["skew"]

    time.time = skewed


def main() -> None:
    import argparse
    import asyncio

    from tests.runtime.crash_hunt_support import _serve

    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    args = parser.parse_args()
    _skew_the_clock(os.environ[SKEW_FILE_ENV])
    asyncio.run(_serve(args.db, args.lease_ttl, 0.05, 64))


if __name__ == "__main__":
    main()
