"""Guards travel with the run: `tether worker` processes enforce what the run declared.

Before, guards applied only in a process built with `Tether(interceptors=...)`: `tether run` and
`tether worker` executed a refund that the policy sends for approval. Here every run is executed
by real `tether worker` processes started without any guards of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether import Tether

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AGENTS = "tests.guards.agents_governed"
GUARDS = f"{AGENTS}:GUARDS"


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TETHER_DB": str(tmp_path / "t.db"),
            "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt"), "PYTHONPATH": str(ROOT),
            "COLUMNS": "200"}


def ledger(env: dict[str, str]) -> list[str]:
    path = Path(env["TETHER_TEST_LEDGER"])
    return path.read_text().splitlines() if path.exists() else []


class WorkerProcess:
    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "worker", "--poll", "0.05", *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return out


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def wait_status(env: dict[str, str], run_id: str, *statuses: str, timeout: float = 90) -> str:
    t = Tether(env["TETHER_DB"])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = t.get(run_id)
            if run.status in statuses:
                return run.status
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} still {t.get(run_id).status}: {t.get(run_id).reason}")
    finally:
        t.close()


def test_approval_through_a_restarted_worker_runs_the_refund_once(
        env: dict[str, str], workers: list[WorkerProcess], tmp_path: Path) -> None:
    # alice is a registered approver: her key pair, and the approvers file every process reads
    cli("approvals", "--keygen", str(tmp_path / "alice"), env=env)
    (tmp_path / "approvers.yaml").write_text(
        json.dumps({"alice": (tmp_path / "alice.pub").read_text()}))
    env["TETHER_APPROVERS"] = str(tmp_path / "approvers.yaml")
    run_id = cli("run", "--detach", "--guards", GUARDS, f"{AGENTS}:governed_refund",
                 "--input", json.dumps("refund order A-7"), env=env).stdout.strip()
    workers.append(WorkerProcess(env))  # no --guards: the run's own declaration applies
    assert wait_status(env, run_id, "waiting", "succeeded", "failed") == "waiting"
    assert ledger(env) == ["lookup A-7"]  # the refund waits for a person
    workers[0].stop()

    listed = cli("approvals", env=env).stdout
    approval_id = f"{run_id}.a1"
    assert approval_id in listed and "refund" in listed, listed
    cli("approve", approval_id, "--reason", "customer verified", "--approver", "alice",
        "--key", str(tmp_path / "alice.key"), env=env)

    workers.append(WorkerProcess(env))  # a new process resumes the run from its journal
    assert wait_status(env, run_id, "succeeded", "failed", "halted") == "succeeded"
    workers[1].stop()
    assert ledger(env) == ["lookup A-7", "refund A-7 500.0"]  # no step ran twice
    t = Tether(env["TETHER_DB"])
    result = t.get(run_id).result
    kinds = [(e.kind, e.name) for e in t.events(run_id)]
    t.close()
    assert "REFUND EXECUTED" in result["answer"]
    assert kinds.count(("step_started", "tool:lookup_order")) == 1
    assert kinds.count(("step_completed", "tool:refund")) == 1


def test_direct_tool_call_past_the_gateway_is_refused_by_the_declared_guards(
        env: dict[str, str]) -> None:
    out = cli("run", "--guards", GUARDS, f"{AGENTS}:direct_refund", "--input", '"A-7"',
              env=env, check=False)
    assert "REFUND EXECUTED" not in out.stdout
    assert ledger(env) == []
    t = Tether(env["TETHER_DB"])
    [run] = t.runs()
    t.close()
    assert run.options["guards"] == GUARDS
    assert run.status == "failed" and "approve required" in (run.error or ""), run


def test_without_guards_the_same_agent_runs_the_refund(env: dict[str, str]) -> None:
    """The control: what the declared guards prevent above does happen without them."""
    out = cli("run", f"{AGENTS}:direct_refund", "--input", '"A-7"', env=env)
    assert ledger(env) == ["refund A-7 500.0"], out.stdout


def test_worker_that_cannot_load_the_guards_leaves_the_run_waiting(
        env: dict[str, str], workers: list[WorkerProcess]) -> None:
    t = Tether(env["TETHER_DB"])
    run_id = t.submit(f"{AGENTS}:direct_refund", "A-7", guards="tests.guards.missing:GUARDS")
    t.close()
    workers.append(WorkerProcess(env))
    assert wait_status(env, run_id, "waiting", "succeeded", "failed") == "waiting"
    out = workers[0].stop()
    t = Tether(env["TETHER_DB"])
    run = t.get(run_id)
    events = t.events(run_id)
    t.close()
    assert "cannot load the run's guards 'tests.guards.missing:GUARDS'" in (run.reason or "")
    assert "tests.guards.missing" in run.reason and run.wake_at is not None
    assert [e.kind for e in events] == ["run_submitted"]  # nothing executed, nothing lost
    assert ledger(env) == []
    assert run.input == "A-7" and run.options["guards"] == "tests.guards.missing:GUARDS"
    assert "cannot load" in out


def test_cli_refuses_guards_that_do_not_load_before_queuing(env: dict[str, str]) -> None:
    out = cli("run", "--guards", "tests.guards.missing:GUARDS", f"{AGENTS}:direct_refund",
              "--input", '"A-7"', env=env, check=False)
    assert out.returncode == 1 and "tests.guards.missing" in out.stderr, out.stderr
    bad = cli("run", "--guards", f"{AGENTS}:TOOLS", f"{AGENTS}:direct_refund", "--input", '"x"',
              env=env, check=False)
    assert bad.returncode == 1 and "not guards" in bad.stderr, bad.stderr
    assert not Path(env["TETHER_DB"]).exists() or Tether(env["TETHER_DB"]).runs() == []
    worker = cli("worker", "--guards", "nope", env=env, check=False)
    assert worker.returncode == 1 and "must look like" in worker.stderr


async def test_in_process_guards_object_and_reference(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`Tether(guards=...)`: an object governs this process's workers; a reference is recorded."""
    from tests.guards import agents_governed

    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    t = Tether(str(tmp_path / "a.db"), guards=agents_governed.GUARDS)
    record = await t.run(agents_governed.direct_refund, "A-7")
    assert record.status == "failed" and "approve required" in (record.error or "")
    assert "guards" not in record.options  # an object cannot travel: nothing is recorded
    t.close()
    t = Tether(str(tmp_path / "b.db"), guards=GUARDS)
    record = await t.run(agents_governed.governed_refund, "refund order A-7")
    assert record.status == "waiting" and record.options["guards"] == GUARDS
    assert "approval" in (record.reason or "")
    t.close()
    assert ledger({"TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt")}) == ["lookup A-7"]
    with pytest.raises(Exception, match="must look like"):
        Tether(str(tmp_path / "c.db"), guards="no-colon")
