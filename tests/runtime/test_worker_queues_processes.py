"""Worker queues and tenant limits across real `tether worker` processes on one PostgreSQL
database: two processes serving tenant acme with `--tenant-limit acme=2` never execute more than
two of acme's runs at once between them, and a third process kept for tenant globex (and one
agent) executes globex's runs only.

Each run holds its step until the test releases it, and counts itself in and out of a file under
a lock, so the test reads how many of a tenant's runs execute at any moment."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.store.pg_support import PgSchema
from tether import Tether
from tether.runtime import Context

ROOT = Path(__file__).resolve().parents[2]
HOLD = "tests.runtime.test_worker_queues_processes:hold_slot"
DEADLINE_S = 120.0


async def hold_slot(ctx: Context, where: str) -> str:
    return str(await ctx.step("hold", _hold, where, ctx.run_id))


async def _hold(where: str, run_id: str) -> str:
    """Count in, wait for the release file, count out."""
    folder = Path(where)
    _count(folder, +1, run_id)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (folder / "release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run_id}: never released")
            await asyncio.sleep(0.02)
    finally:
        _count(folder, -1, run_id)
    return run_id


def _count(folder: Path, delta: int, run_id: str) -> None:
    with open(folder / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = executing(folder) + delta
        (folder / "now").write_text(str(now))
        with open(folder / "log", "a") as log:
            log.write(f"{now} {run_id} {os.getpid()}\n")


def executing(folder: Path) -> int:
    path = folder / "now"
    return int(path.read_text()) if path.exists() else 0


def most_at_once(folder: Path) -> int:
    path = folder / "log"
    return max((int(line.split()[0]) for line in path.read_text().splitlines()), default=0)


def wait_for(what: str, condition: Any, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class WorkerProcess:
    """One `tether worker` subprocess, its output in a file; `owner` from its start-up line."""

    def __init__(self, name: str, url: str, tmp: Path, *args: str) -> None:
        self.out = tmp / f"{name}.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tether", "worker", "--db", url, "--poll", "0.1", *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)

    @property
    def owner(self) -> str | None:
        found = re.search(r"^worker (\S+) serving ", self.out.read_text(), re.M)
        return found.group(1) if found else None

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.out.read_text()


@pytest.mark.slow
def test_a_tenant_limit_holds_across_worker_processes_and_queues_keep_to_their_tenant(
        tmp_path: Path) -> None:
    acme_dir, globex_dir = tmp_path / "acme", tmp_path / "globex"
    acme_dir.mkdir()
    globex_dir.mkdir()
    schema = PgSchema()
    client = Tether(schema.url)
    workers: list[WorkerProcess] = []
    try:
        acme = [client.submit(HOLD, str(acme_dir), tenant="acme") for _ in range(6)]
        globex = [client.submit(HOLD, str(globex_dir), tenant="globex") for _ in range(2)]
        # one acme worker may hold one run, the other eight: if each counted only its own
        # runs against the limit, the second would take two and three would execute at once
        workers = [
            WorkerProcess("acme-1", schema.url, tmp_path, "--tenant", "acme",
                          "--tenant-limit", "acme=2", "--concurrency", "1"),
            WorkerProcess("acme-2", schema.url, tmp_path, "--tenant", "acme",
                          "--tenant-limit", "acme=2", "--concurrency", "8"),
            WorkerProcess("globex", schema.url, tmp_path, "--tenant", "globex", "--agent", HOLD),
        ]
        wait_for("the workers to start", lambda: all(
            w.owner is not None or w.proc.poll() is not None for w in workers))
        assert all(w.proc.poll() is None for w in workers), [w.stop() for w in workers]
        wait_for("two acme runs and both globex runs executing",
                 lambda: executing(acme_dir) == 2 and executing(globex_dir) == 2)
        time.sleep(1.5)  # ~15 more looks for work by each acme worker (poll 0.1 s): all refused
        assert executing(acme_dir) == 2
        assert len(client.store.list_runs(status="running", tenant="acme")) == 2
        (acme_dir / "release").touch()
        (globex_dir / "release").touch()
        wait_for("every run to finish", lambda: all(
            client.get(r).finished for r in acme + globex))
        assert [client.get(r).status for r in acme + globex] == ["succeeded"] * 8
        assert most_at_once(acme_dir) == 2
        owners = {w.owner for w in workers[:2]}
        for run_id in acme:
            ran = {e.data["worker"] for e in client.events(run_id) if e.kind == "run_started"}
            assert ran and ran <= owners, (run_id, ran)
        for run_id in globex:
            ran = {e.data["worker"] for e in client.events(run_id) if e.kind == "run_started"}
            assert ran == {workers[2].owner}, (run_id, ran)
    finally:
        outputs = [w.stop() for w in workers]
        client.close()
        schema.drop()
    assert all("stopped after" in out for out in outputs), outputs
    assert f"(tenant globex; runs started by agent {HOLD})" in outputs[2]  # its start-up line
