"""Agent references any worker can load, and agents checked before they are queued (issue 17
§5, §6): through real `tether` processes started in other directories, and the library API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.runtime import AgentNotFound, InvalidInput, Worker

ROOT = Path(__file__).resolve().parents[2]

BILLING = '''
from helper import fee            # a module next to the agent file

async def billing(ctx, order):
    return await ctx.step("charge", fee, order["amount"])

class Tether:                     # not an agent: a class that happens to be here
    pass

def sync_agent(ctx, order):
    return order

async def one_arg(ctx):
    return 1

async def three_args(ctx, order, extra):
    return 1

async def optional_input(ctx, order=None):
    return order

async def ignores_input(ctx, _):
    return "ok"
'''


def cli(*args: str, cwd: Path, db: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TETHER_DB": str(db), "COLUMNS": "200",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"tether {args} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "billing.py").write_text(BILLING)
    (folder / "helper.py").write_text("def fee(amount):\n    return amount + 1\n")
    return folder


def wait_status(db: Path, run_id: str, *wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    t = Tether(str(db))
    try:
        while time.monotonic() < deadline:
            status = t.get(run_id).status
            if status in wanted:
                return status
            time.sleep(0.1)
    finally:
        t.close()
    raise AssertionError(f"run {run_id} never reached {wanted}")


def test_a_worker_started_elsewhere_runs_a_file_agent_that_imports_its_neighbour(
        app: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    run_id = cli("run", "billing.py:billing", "--input", '{"amount": 41}', "--detach",
                 cwd=app, db=db).stdout.strip()
    t = Tether(str(db))
    assert t.get(run_id).agent == f"{app / 'billing.py'}:billing"  # stored absolute
    t.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "tether", "worker", "--poll", "0.05"],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        status = wait_status(db, run_id, "succeeded", "failed")
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
    t = Tether(str(db))
    run = t.get(run_id)
    t.close()
    assert status == "succeeded", run.error
    assert run.result == 42


async def test_a_worker_that_cannot_load_the_agent_leaves_the_run_waiting(
        app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(app)
    t = Tether(str(tmp_path / "t.db"))
    run_id = t.submit("billing.py:billing", {"amount": 1})
    moved = tmp_path / "moved"
    (app).rename(moved)  # the deployment lost the file: this worker cannot import the agent
    monkeypatch.chdir(tmp_path)
    worker = Worker(t.store, poll_interval=0.05, guards_retry_s=120)
    await worker.serve(until=lambda: t.get(run_id).status != "queued")
    run = t.get(run_id)
    assert run.status == "waiting", (run.status, run.error)
    assert "cannot load the run's agent" in (run.reason or "")
    assert "billing.py' does not exist" in run.reason and run.wake_at is not None
    assert run.wake_at > time.time() + 60
    assert [e.kind for e in t.events(run_id)] == ["run_submitted"]  # nothing executed
    moved.rename(app)  # deployed again: the next worker after wake_at finishes it
    t.store.write(lambda tx: tx.update_run(run_id, wake_at=time.time()))
    record = await t.drive(run_id)
    assert record.status == "succeeded" and record.result == 2
    t.close()


def test_a_file_agent_whose_import_fails_is_loaded_again_not_half_cached(
        tmp_path: Path) -> None:
    from tether.runtime import resolve_agent

    agent_file = tmp_path / "flaky.py"
    agent_file.write_text("import not_there_yet\nasync def go(ctx, x):\n    return x\n")
    with pytest.raises(AgentNotFound, match="not_there_yet"):
        resolve_agent(f"{agent_file}:go")
    (tmp_path / "not_there_yet.py").write_text("")
    assert resolve_agent(f"{agent_file}:go").__name__ == "go"
    assert str(tmp_path) not in sys.path  # only while importing


@pytest.mark.parametrize(("name", "message"), [
    ("Tether", "names the class Tether, not an agent"),
    ("sync_agent", "is not an `async def` function"),
    ("one_arg", "cannot be called as an agent: it is `one_arg(ctx)`"),
    ("three_args", "cannot be called as an agent: it is `three_args(ctx, order, extra)`"),
    ("missing", "has no attribute 'missing'"),
])
def test_what_is_not_an_agent_is_refused_before_queuing(
        app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
        message: str) -> None:
    monkeypatch.chdir(app)
    t = Tether(str(tmp_path / "t.db"))
    with pytest.raises(AgentNotFound) as caught:
        t.submit(f"billing.py:{name}", {"amount": 1})
    assert message in str(caught.value) and f"billing.py:{name}" in str(caught.value)
    assert t.runs() == []
    t.close()


def test_the_cli_refuses_a_class_and_a_missing_input_and_queues_nothing(
        app: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = cli("run", "billing.py:Tether", "--input", "{}", "--detach", cwd=app, db=db,
              check=False)
    assert out.returncode == 1 and "names the class Tether, not an agent" in out.stderr
    out = cli("run", "billing.py:billing", "--detach", cwd=app, db=db, check=False)
    assert out.returncode == 1, out.stdout
    assert "needs an input: its parameter 'order' has no default" in out.stderr
    assert "--input" in out.stderr
    t = Tether(str(db))
    assert t.runs() == []
    t.close()
    queued = cli("run", "billing.py:ignores_input", "--detach", cwd=app, db=db)
    assert queued.stdout.strip().startswith("r")


async def _agent(ctx: Any, order: dict[str, Any]) -> int:
    return 1


async def _defaulted(ctx: Any, order: dict[str, Any] | None) -> int:
    return 1


def _sync(ctx: Any, order: Any) -> int:
    return 1


class _Callable:
    async def __call__(self, ctx: Any, order: Any) -> int:
        return 1


def test_library_submit_checks_objects_too(tmp_path: Path) -> None:
    t = Tether(str(tmp_path / "t.db"))
    with pytest.raises(InvalidInput, match="needs an input: its parameter 'order'"):
        t.submit(_agent)
    assert t.runs() == []
    t.submit(_agent, None)  # an explicit null input is an input
    t.submit(_defaulted)  # Optional: None is fine
    with pytest.raises(AgentNotFound, match="not an `async def` function"):
        t.submit(_sync, 1)
    with pytest.raises(AgentNotFound, match="names the class"):
        t.submit(_Callable)
    assert len(t.runs()) == 2
    t.close()


def test_an_agent_file_with_a_syntax_error_is_named_by_line_and_column(tmp_path: Path) -> None:
    """Before: `... failed: SyntaxError("expected ':'", ('/.../bad.py', 1, 20, ...))`."""
    from tether.runtime.refs import resolve_agent

    bad = tmp_path / "bad.py"
    bad.write_text("async def agent(ctx, x)\n    return x\n")
    with pytest.raises(AgentNotFound) as refused:
        resolve_agent(f"{bad}:agent")
    message = str(refused.value)
    assert f"{bad}:1:" in message and "syntax error: expected ':'" in message, message
    assert "SyntaxError(" not in message
