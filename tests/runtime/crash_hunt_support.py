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

Agents are referenced as `tests.runtime.crash_hunt_support:<name>`; workers run
`python -m tests.runtime.crash_hunt_support --db DB` (a bare `tether.Worker`) or `tether worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import glob
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from tether import Context, Tether, Worker, open_store
from tether.guards import (
    GuardConfig,
    Guards,
    KeyRegistry,
    RetryPolicy,
    load_key_registry,
    loads_policy,
)
from tether.tools import ToolRegistry, tool

REPO = Path(__file__).resolve().parents[2]
MODULE = "tests.runtime.crash_hunt_support"
LEDGER_ENV = "CRASH_HUNT_LEDGER"
GATES_ENV = "CRASH_HUNT_GATES"
DELAY_ENV = "CRASH_HUNT_DELAY_MS"


# -- the outside world ------------------------------------------------------------------------
_lock = threading.Lock()


def _ledger_fd() -> int:
    return os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def do_effect(token: str, key: str | None = None) -> str:
    """Perform one side effect: append `token` to the ledger. With `key` (an idempotency key),
    behave like an API that deduplicates: a key seen before is answered without acting again
    (noted as a `dedup` line)."""
    entry: dict[str, Any] = {"token": token, "pid": os.getpid(), "t": time.time()}
    if key is not None:
        entry["key"] = key
    with _lock:
        fd = _ledger_fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if key is not None and any(e.get("key") == key and not e.get("dedup")
                                       for e in read_ledger(os.environ[LEDGER_ENV])):
                entry["dedup"] = True
            os.write(fd, orjson.dumps(entry) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"did {token}"


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def gate(name: str) -> None:
    """Block here (until SIGKILLed) if the test armed this gate; see the module's docstring."""
    gates = os.environ.get(GATES_ENV)
    if not gates:
        return
    hold = Path(gates) / f"{name}.hold"
    try:
        os.rename(hold, Path(gates) / f"{name}.reached.{os.getpid()}")
    except FileNotFoundError:
        return
    release = Path(gates) / f"{name}.release"
    while not release.exists():
        time.sleep(0.005)


def pause() -> None:
    """Up to $CRASH_HUNT_DELAY_MS of work around an effect, so random kills land inside steps
    (before the effect, or after it and before the runtime heard of it)."""
    ms = float(os.environ.get(DELAY_ENV) or 0)
    if ms:
        time.sleep(random.uniform(0, ms) / 1000)


# -- tools ------------------------------------------------------------------------------------
@tool(side_effect="write")
def send(token: str) -> str:
    """A non-idempotent write (an e-mail, a payment without a key): acts on every call."""
    gate(f"{token}.before")
    pause()
    out = do_effect(token)
    pause()
    gate(f"{token}.after")
    return out


@tool(side_effect="read")
def lookup(token: str) -> str:
    """A read (idempotent by default): a crash in it is answered by calling it again."""
    gate(f"{token}.before")
    out = do_effect(token)
    gate(f"{token}.after")
    return out


@tool(side_effect="write")
def charge(token: str, idempotency_key: str) -> str:
    """A write that takes the runtime's idempotency key and deduplicates on it."""
    gate(f"{token}.before")
    pause()
    out = do_effect(token, idempotency_key)
    pause()
    gate(f"{token}.after")
    return out


@tool(side_effect="write")
async def send_async(token: str) -> str:
    """`send` as a coroutine: it runs on the worker's event loop, not in a thread."""
    await asyncio.to_thread(gate, f"{token}.before")
    await asyncio.to_thread(pause)
    out = do_effect(token)
    await asyncio.to_thread(pause)
    await asyncio.to_thread(gate, f"{token}.after")
    return out


@tool(side_effect="write")
def refund(order: str, amount: float) -> str:
    """A write the policy sends for approval (amounts of 100 and more)."""
    gate(f"refund-{order}.before")
    do_effect(f"refund-{order}")
    gate(f"refund-{order}.after")
    return f"REFUNDED {amount} for {order}"


def mark(name: str) -> None:
    """Leave a mark for the test (one more file `GATES/<name>.<unique>`)."""
    gates = os.environ.get(GATES_ENV)
    if gates:
        (Path(gates) / f"{name}.{os.getpid()}.{time.monotonic_ns()}").touch()


@tool(side_effect="write", timeout=0.5)
def slow_send(token: str) -> str:
    """`send` with a 0.5 s timeout (the tool layer's own time bound); marks each call's thread
    entering and leaving."""
    mark(f"{token}.entered")
    try:
        gate(f"{token}.before")
        return do_effect(token)
    finally:
        mark(f"{token}.left")


@tool(side_effect="write", timeout=0.5, retries=1)
def slow_send_retrying(token: str) -> str:
    """`slow_send` with one retry of its own (the tool layer's `retries`)."""
    mark(f"{token}.entered")
    try:
        gate(f"{token}.before")
        return do_effect(token)
    finally:
        mark(f"{token}.left")


@tool(side_effect="write")
def send_unless_broken(token: str) -> str:
    """`send`, failing before its effect while the file GATES/broken exists."""
    if (Path(os.environ[GATES_ENV]) / "broken").exists():
        raise RuntimeError("the mail server is down")
    gate(f"{token}.before")
    out = do_effect(token)
    gate(f"{token}.after")
    return out


TOOLS = ToolRegistry([send, lookup, charge, send_async, refund, slow_send, slow_send_retrying,
                      send_unless_broken])

POLICY = """\
version: 1
name: crash-hunt
rules:
  - id: sends
    tools: [send, lookup, charge, send_async, slow_send, slow_send_retrying, send_unless_broken]
    effect: allow
  - id: refunds
    tools: refund
    effect: approve
"""


def _approvers() -> KeyRegistry:
    path = os.environ.get("TETHER_APPROVERS")
    return load_key_registry(path) if path else KeyRegistry()


GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "crash-hunt.yaml"),
                            approvers=_approvers()), tools=TOOLS)
# the same, retrying failed tool calls (`execution_error`, `timeout`, `http_error`) once
GUARDS_RETRY = Guards(GuardConfig(policy=loads_policy(POLICY, "crash-hunt.yaml"),
                                  retry=RetryPolicy(max_attempts=2, base_delay_s=0.01)),
                      tools=TOOLS)


def tool_ok(token: str, tool_name: str = "send") -> dict[str, Any]:
    """The ToolResult a `send` of `token` journals: what a human resolving it with --skip gives."""
    return {"tool": tool_name, "ok": True, "output": f"did {token}", "error": None}


# -- agents -----------------------------------------------------------------------------------
async def _send(ctx: Context, token: str, name: str = "send") -> str:
    result = await ctx.tool(TOOLS, name, {"token": token})
    assert result.ok, result
    return str(result.output)


async def pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """Sequential non-idempotent sends, one per token."""
    return [await _send(ctx, t, inp.get("tool", "send")) for t in inp["tokens"]]


def send_activity(token: str) -> str:
    """`send` as a plain sync activity for `ctx.step` (not a tool)."""
    gate(f"{token}.before")
    return do_effect(token)


async def step_pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """`pipeline` through `ctx.step` with a sync activity: the runtime's own thread path."""
    return [await ctx.step("send", send_activity, t) for t in inp["tokens"]]


async def tool_results(ctx: Context, inp: dict[str, Any]) -> list[dict[str, Any]]:
    """Each token through `inp["tool"]`, the ToolResults as they came (failures included),
    through the run's guards when it declares some."""
    out = []
    for t in inp["tokens"]:
        if ctx.guards is not None:
            result = await ctx.guards.tool(ctx, inp["tool"], {"token": t}, TOOLS)
        else:
            result = await ctx.tool(TOOLS, inp["tool"], {"token": t})
        out.append(result.model_dump(mode="json"))
    return out


async def fragile(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """Sends, the middle one through `send_unless_broken`; a failed call fails the run."""
    out = [await _send(ctx, f"{inp['tag']}-1")]
    result = await ctx.tool(TOOLS, "send_unless_broken", {"token": f"{inp['tag']}-2"})
    if not result.ok:
        raise RuntimeError(f"could not send: {result.error}")
    out.append(str(result.output))
    out.append(await _send(ctx, f"{inp['tag']}-3"))
    return out


async def keyed_pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    out = []
    for t in inp["tokens"]:
        result = await ctx.tool(TOOLS, "charge", {"token": t})
        assert result.ok, result
        out.append(str(result.output))
    return out


async def signalled(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """send, wait for signal `go`, send a token named after the payload, wait for `go2`, send."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-1")
    payload = await ctx.wait_for("go")
    second = await _send(ctx, f"{tag}-2-{payload}")
    payload2 = await ctx.wait_for("go2")
    third = await _send(ctx, f"{tag}-3-{payload2}")
    return {"out": [first, second, third], "payloads": [payload, payload2]}


async def timed(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """send, a durable timer, send; the time seen after the timer is journaled."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-1")
    before = ctx.now().timestamp()
    await ctx.sleep(inp["sleep"])
    after = ctx.now().timestamp()
    second = await _send(ctx, f"{tag}-2")
    return {"out": [first, second], "slept": after - before}


async def child(ctx: Context, inp: dict[str, Any]) -> str:
    return await _send(ctx, inp["token"])


async def parent(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Spawn one child per token (each sends its token), join them all, then send `final`."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-p0")
    handles = [await ctx.spawn(f"{MODULE}:child", {"token": f"{tag}-c{i}"})
               for i in range(inp["children"])]
    joined = await ctx.gather(*(h.result() for h in handles))
    last = await _send(ctx, f"{tag}-pz")
    return {"first": first, "children": joined, "last": last}


async def busy_parent(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Spawn the children, then send its own token while they run, then join them."""
    tag = inp["tag"]
    handles = [await ctx.spawn(f"{MODULE}:child", {"token": f"{tag}-c{i}"})
               for i in range(inp["children"])]
    mid = await _send(ctx, f"{tag}-mid")
    joined = await ctx.gather(*(h.result() for h in handles))
    return {"mid": mid, "children": joined}


async def governed(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """A send (allowed), then a refund the policy sends for approval, then a send, all through
    the guards the run declares (`GUARDS`)."""
    assert ctx.guards is not None, "the run must declare the crash hunt's GUARDS"
    tag = inp["tag"]
    a = await ctx.guards.tool(ctx, "send", {"token": f"{tag}-1"}, TOOLS)
    r = await ctx.guards.tool(ctx, "refund", {"order": tag, "amount": 250.0}, TOOLS)
    b = await ctx.guards.tool(ctx, "send", {"token": f"{tag}-2"}, TOOLS)
    return {"a": a.output, "refund": r.output, "refund_ok": r.ok, "b": b.output}


async def marathon(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Everything at once, for repeated random kills: sends, a keyed charge, a gather of sends,
    a long timer, a signal and two children."""
    tag = inp["tag"]
    out: list[Any] = []
    for i in range(inp["sends"]):
        out.append(await _send(ctx, f"{tag}-s{i}"))
    charged = await ctx.tool(TOOLS, "charge", {"token": f"{tag}-k"})
    out.append(charged.output)
    out.append(await ctx.gather(*(_send(ctx, f"{tag}-g{i}", "send_async") for i in range(3))))
    await ctx.sleep(inp["sleep"])
    out.append(await _send(ctx, f"{tag}-t"))
    payload = await ctx.wait_for("go")
    out.append(await _send(ctx, f"{tag}-w-{payload}"))
    kids = [await ctx.spawn(f"{MODULE}:pipeline", {"tokens": [f"{tag}-c{i}a", f"{tag}-c{i}b"]})
            for i in range(2)]
    out.append(await ctx.gather(*(k.result() for k in kids)))
    out.append(await _send(ctx, f"{tag}-end"))
    return {"out": out}


# -- the lab ----------------------------------------------------------------------------------
def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Lab:
    """One SQLite journal, a ledger, gates, and the worker processes serving them."""

    def __init__(self, root: Path, *, lease_ttl: float = 1.0) -> None:
        self.root = root
        self.db = str(root / "crash.db")
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
            cmd = [sys.executable, "-m", MODULE, "--db", self.db, "--lease-ttl", ttl,
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
