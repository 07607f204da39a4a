"""`tether serve` frozen at random (SIGSTOP for 1-800 ms, SIGCONT, again after 0-20 ms) while 8
clients submit 40 runs of a multi-step agent (steps not safe to repeat, tool calls, a timer) and
poll the API for their results: every request answers (no 5xx), every run ends succeeded with the
right result (none stuck, none waiting for a human), every step's side effect happened once.

Why: a server process can stall at any point (a loaded host, a paused container, a profiler), and
its timers (the embedded worker's heartbeat and poll, leases, the committer) then fire in orders a
quiet machine never shows (see test_mcp_frozen.py, which found a heartbeat stopping a run).
The second case serves with `--lease-ttl 0.3`, so that beats, and leases that expire while the
process is frozen, are many (with a heartbeat that would not renew a lease that had expired,
that case fails: runs wait for a human)."""

from __future__ import annotations

import concurrent.futures
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.freezer import Freezer
from tests.server.conftest import ROOT, free_port, tether_cli
from tether import Context
from tether.tools import ToolRegistry, tool

RUNS = 40
CLIENTS = 8
LEDGER_ENV = "TETHER_TEST_LEDGER"


def _did(what: str) -> None:
    with open(os.environ[LEDGER_ENV], "a", encoding="utf-8") as fh:
        fh.write(what + "\n")


def _square(run: str, i: int, x: int) -> int:
    """A step that is not safe to repeat: it records each execution."""
    time.sleep(0.002)
    _did(f"{run} square{i} {x * x}")
    time.sleep(0.002)
    return x * x


@tool(side_effect="read")
def weigh(item: str) -> dict[str, Any]:
    """The weight of an item, in grams."""
    return {"item": item, "grams": len(item) * 10}


TOOLS = ToolRegistry([weigh])


async def pipeline(ctx: Context, n: int) -> dict[str, Any]:
    """Three recorded steps, two tool calls, a short timer, one more recorded step."""
    total = 0
    for i in range(3):
        total += await ctx.step(f"square{i}", _square, ctx.run_id, i, n + i)
    weights = []
    for item in (f"a{n}", f"bb{n}"):
        got = await ctx.tool(TOOLS, "weigh", {"item": item})
        weights.append(got.output["grams"])
    await ctx.sleep(0.01)
    total += await ctx.step("square3", _square, ctx.run_id, 3, sum(weights))
    return {"n": n, "total": total}


def expected(n: int) -> dict[str, Any]:
    weights = [len(f"a{n}") * 10, len(f"bb{n}") * 10]
    return {"n": n, "total": sum((n + i) ** 2 for i in range(3)) + sum(weights) ** 2}


AGENTS = "pipeline: tests.server.test_api_frozen:pipeline\n"


def _serve(tmp: Path, lease: float | None, *args: str, db: str | None = None
           ) -> tuple[Any, str, str]:
    db = db or str(tmp / "tether.db")
    (tmp / "agents.yaml").write_text(AGENTS)
    key = tether_cli("keys", "create", "--tenant", "acme", "--role", "operator", "--db",
                     db).split()[0]
    port = free_port()
    leased = ["--lease-ttl", str(lease)] if lease else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port), "--agents",
         str(tmp / "agents.yaml"), "--db", db, *leased, *args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, LEDGER_ENV: str(tmp / "ledger.txt")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/openapi.json", timeout=2).status_code == 200:
                return proc, base, key
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"tether serve did not start: {proc.communicate()[0]}")
        time.sleep(0.2)


def _client(base: str, key: str, ns: list[int], wrong: list[str], deadline: float
            ) -> dict[str, int]:
    """Submit each of `ns` and wait for it (all by `deadline`, a time.monotonic()); every
    answer that is not what it should be goes into `wrong`. Returns run id -> n."""
    ids: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as c:
        for n in ns:
            r = c.post("/v1/runs", json={"agent": "pipeline", "input": n,
                                         "idempotency_key": f"n-{n}"})
            if r.status_code != 201:
                wrong.append(f"submit {n}: {r.status_code} {r.text[:300]}")
                continue
            run_id = r.json()["run"]["id"]
            ids[run_id] = n
            while True:
                r = c.get(f"/v1/runs/{run_id}")
                if r.status_code != 200:
                    wrong.append(f"get {n} ({run_id}): {r.status_code} {r.text[:300]}")
                    break
                run = r.json()["run"]
                if run["status"] in ("succeeded", "failed", "cancelled", "halted"):
                    if run["status"] != "succeeded" or run["result"] != expected(n):
                        wrong.append(f"run {n} ({run_id}): {run['status']} "
                                     f"{run.get('result')} {run.get('error')} "
                                     f"{run.get('reason')}")
                    break
                if run["status"] == "waiting" and "tether resolve" in (run.get("reason") or ""):
                    wrong.append(f"run {n} ({run_id}) waits for a human: {run['reason']}")
                    break
                if time.monotonic() > deadline:
                    wrong.append(f"run {n} ({run_id}) stuck: {run['status']} "
                                 f"{run.get('reason')}")
                    break
                time.sleep(random.uniform(0.01, 0.05))
    return ids


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("lease", [None, 0.3], ids=["default-lease", "lease-0.3s"])
def test_runs_submitted_to_a_server_frozen_at_random_all_succeed(
        tmp_path: Path, lease: float | None) -> None:

    proc, base, key = _serve(tmp_path, lease)
    wrong: list[str] = []
    ids: dict[str, int] = {}
    try:
        with Freezer(proc.pid, seed=11) as freezer, \
                concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            shares = [list(range(RUNS))[i::CLIENTS] for i in range(CLIENTS)]
            deadline = time.monotonic() + 60
            for got in pool.map(lambda ns: _client(base, key, ns, wrong, deadline), shares):
                ids.update(got)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    attempts = _attempts(tmp_path / "tether.db")
    print(f"{freezer.freezes} freezes; attempts per run: {Counter(attempts.values())}")
    assert freezer.freezes > 20, f"only {freezer.freezes} freezes: the test froze too little"
    assert wrong == [], f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:10])
    assert "Traceback" not in out, out[-3000:]
    executed = Counter((tmp_path / "ledger.txt").read_text().splitlines())
    twice = {line: k for line, k in executed.items() if k != 1}
    assert twice == {}, f"steps executed more than once: {twice}"
    assert len(executed) == 4 * RUNS


def _attempts(db: Path) -> dict[str, int]:
    from tether.runtime import Tether

    t = Tether(db)
    try:
        return {r.id: r.attempts for r in t.runs(limit=1000)}
    finally:
        t.close()
