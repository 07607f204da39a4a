"""Issue 17 §15: `tether retry RUN` / `Tether.retry` — a new attempt of a failed run from its
journal: the steps that worked replay (their side effects are counted, and happen once), the
failed step executes again, and the journal keeps both attempts.

The runtime is real (SQLite file, workers, replay); side effects are lines in a ledger file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import agents_progress as agents
from tests.cli.test_progress import cli, env
from tether import Tether
from tether.observe import timeline_rows
from tether.runtime import InvalidInput
from tether.runtime.retry import RunNotRetryable
from tether.store import vocabulary as v

__all__ = ["env"]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(path))
    return path


def kinds(t: Tether, run_id: str) -> list[str]:
    return [f"{e.kind} {e.name or ''}".strip() for e in t.events(run_id)]


async def test_failed_step_runs_again_and_earlier_steps_do_not(tether: Tether,
                                                               ledger: Path) -> None:
    first = await tether.run(agents.flaky_step, "A-7")
    assert first.status == "failed" and "payment service is down" in (first.error or "")
    plan = tether.retry(first.id)
    assert [s.name for s in plan.rerun] == ["charge"]
    assert [name for _, name in plan.replayed] == ["reserve", "price"]
    assert not plan.rerun[0].idempotent  # a plain step: the plan says it may take effect twice
    assert "  warning: charge is not declared idempotent: if its effect took place before it " \
        "failed, it takes place again" in plan.explain()
    assert tether.get(first.id).status == "queued"
    again = await tether.drive(first.id)
    assert again.status == "succeeded" and again.result == "A-7 charged" and again.error is None
    # side effects: the steps before the failure ran once, the failed one twice in all
    assert [agents.done(w) for w in ("reserve", "price", "charge attempted", "charge",
                                     "notify")] == [1, 1, 1, 1, 1]
    journal = kinds(tether, first.id)
    assert journal.count("step_started charge") == 2  # both attempts are in the journal
    assert journal.count("step_started reserve") == 1
    assert journal.index("step_failed charge") < journal.index("run_failed") < journal.index(
        "run_retried") < journal.index("step_completed charge") < journal.index("run_completed")
    retried = next(e for e in tether.events(first.id) if e.kind == v.RUN_RETRIED)
    record = v.retry_record(retried)
    assert record is not None and record.attempt == 2 and record.rerun_steps == ("3 charge",)
    assert record.replayed_steps == 2 and record.previous_status == "failed"
    row = next(r for r in timeline_rows(tether.events(first.id)) if r.kind == v.RUN_RETRIED)
    assert row.detail.startswith("attempt 2 of a failed run (ActivityError: step 'charge'")
    assert row.detail.endswith("2 step(s) replay from the journal; runs again: 3 charge")
    # the retried run replays read-only from its journal like any other
    assert await tether.replay(first.id) == "A-7 charged"


async def test_failed_tool_result_is_executed_again(tether: Tether, ledger: Path) -> None:
    first = await tether.run(agents.flaky_tool, "B-1")
    assert first.status == "failed" and "charge failed" in (first.error or "")
    plan = tether.retry(first.id)
    assert [s.name for s in plan.rerun] == ["tool:charge_card"]
    assert "failed tool result" in plan.rerun[0].why
    assert await tether.drive(first.id) is not None
    record = tether.get(first.id)
    assert record.status == "succeeded" and record.result == "charged B-1"
    assert agents.done("reserve") == 1 and agents.done("charge_card B-1") == 1
    assert kinds(tether, first.id).count("log") == 1  # the log line before it replays


async def test_a_handled_failure_is_not_rerun(tether: Tether, ledger: Path) -> None:
    first = await tether.run(agents.caught_then_fails, "C-1")
    assert first.status == "failed" and "bug in the agent's own code" in (first.error or "")
    plan = tether.retry(first.id)
    assert plan.rerun == () and [n for _, n in plan.replayed] == ["charge", "fallback"]
    assert any("the agent's code after its last step" in line for line in plan.explain())
    second = await tether.drive(first.id)
    assert second.status == "failed"  # the bug is still there
    agents.did("bug fixed")
    third_plan = tether.retry(first.id)
    assert third_plan.attempt == 3
    third = await tether.drive(first.id)
    assert third.status == "succeeded" and third.result == "ok"
    assert agents.done("charge attempted") == 1 and agents.done("fallback") == 1
    assert kinds(tether, first.id).count("run_retried") == 2


async def test_only_failed_or_halted_root_runs_can_be_retried(tether: Tether,
                                                              ledger: Path) -> None:
    ok = await tether.run("tests.runtime.agents_core:sequential", 2)
    with pytest.raises(RunNotRetryable,
                       match="has status 'succeeded': nothing to retry; start a new run"):
        tether.retry(ok.id)
    queued = tether.submit("tests.runtime.agents_core:sequential", 1)
    with pytest.raises(RunNotRetryable, match="has status 'queued': only a failed or halted run"):
        tether.retry(queued)
    waiting = await tether.run("tests.runtime.agents_core:waits_then_steps", None)
    tether.cancel(waiting.id)
    with pytest.raises(RunNotRetryable, match="cancelled on purpose"):
        tether.retry(waiting.id)
    parent = await tether.run("tests.runtime.agents_core:recursive", 0, max_depth=1)
    child = tether.runs(status="failed")
    child_ids = [r.id for r in child if r.parent_id == parent.id]
    assert parent.status == "failed" and child_ids
    with pytest.raises(RunNotRetryable, match=f"is a child of run '{parent.id}'"):
        tether.retry(child_ids[0])
    assert kinds(tether, ok.id).count("run_retried") == 0  # a refusal writes nothing
    assert kinds(tether, child_ids[0]).count("run_retried") == 0


async def test_a_failed_run_retried_twice_concurrently_queues_once(tether: Tether,
                                                                   ledger: Path) -> None:
    first = await tether.run(agents.flaky_step, "D-1")
    plan = tether.retry(first.id)
    with pytest.raises(RunNotRetryable, match="has status 'queued'"):
        tether.retry(first.id)
    assert plan.attempt == 2 and kinds(tether, first.id).count("run_retried") == 1


def test_cli_retry_explains_then_executes(env: dict[str, str]) -> None:
    failed = cli(env, "run", "tests.cli.agents_progress:flaky_step", "--input", '"E-5"')
    assert failed.returncode == 1
    run_id = next(w for w in failed.stdout.split() if w.startswith("r") and len(w) == 16)
    proc = cli(env, "retry", run_id[:8])  # a unique prefix is enough
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (f"retrying run {run_id}: attempt 2 (it failed: ActivityError: step 'charge' "
            "failed: ConnectionError") in out
    assert "replayed from the journal, not executed again: 2 step(s): 1 reserve, 2 price" in out
    assert "executes again: step 3 charge (was ConnectionError" in out
    assert "succeeded" in out and "run_retried" in out
    assert "step_started" in proc.stderr  # progress of the new attempt as it executes
    ledger = Path(env["TETHER_TEST_LEDGER"]).read_text().split("\n")
    assert ledger.count("reserve") == 1 and ledger.count("charge") == 1
    again = cli(env, "retry", run_id)
    assert again.returncode == 1 and "has status 'succeeded': nothing to retry" in again.stderr
    assert "Traceback" not in again.stderr


def test_cli_retry_detach_then_a_worker_executes_it(env: dict[str, str]) -> None:
    failed = cli(env, "run", "tests.cli.agents_progress:flaky_tool", "--input", '"F-2"',
                 "--quiet")
    run_id = next(w for w in failed.stdout.split() if w.startswith("r") and len(w) == 16)
    queued = cli(env, "retry", run_id, "--detach")
    assert queued.returncode == 0 and "executes again: step 3 tool:charge_card" in queued.stdout
    assert '"status": "queued"' in cli(env, "show", run_id, "--json").stdout.replace(
        '"status":"queued"', '"status": "queued"')
    worker = subprocess.Popen([sys.executable, "-m", "tether.cli", "worker", "--poll", "0.05"],
                              env=env, cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        followed = cli(env, "show", run_id, "--follow")
    finally:
        worker.terminate()
        worker.wait(30)
    assert followed.returncode == 0, followed.stdout
    assert followed.stdout.strip().splitlines()[-1] == f"run {run_id} succeeded"


# -- halted runs: retried, halted again unless the limit was raised ---------------------------

@pytest.fixture
def governed(db_path: str, ledger: Path, monkeypatch: pytest.MonkeyPatch) -> Tether:
    monkeypatch.delenv("TETHER_TEST_GATE", raising=False)
    return Tether(db_path, guards="tests.cli.agents_progress:GUARDS")


async def test_a_halted_run_halts_again_without_a_raised_budget(governed: Tether) -> None:
    run_id = governed.submit(agents.gated_steps, 3, options={"budget": {"steps": 2}})
    first = await governed.drive(run_id)
    assert first.status == "halted" and "steps" in (first.reason or "")
    plan = governed.retry(run_id)
    assert plan.rerun == () and [n for _, n in plan.replayed] == ["first", "gated"]
    assert any("halts again there unless its limit was raised" in s for s in plan.explain())
    again = await governed.drive(run_id)
    assert again.status == "halted"
    assert agents.done("first") == 1 and agents.done("gated") == 1


async def test_a_halted_run_retried_with_a_raised_budget_finishes(governed: Tether) -> None:
    run_id = governed.submit(agents.gated_steps, 3, options={"budget": {"steps": 2}})
    assert (await governed.drive(run_id)).status == "halted"
    plan = governed.retry(run_id, budget={"steps": 10})
    assert "budget for the new attempt: steps=10" in plan.explain()
    done = await governed.drive(run_id)
    assert done.status == "succeeded" and done.result == 3
    assert done.options["budget"] == {"steps": 10}
    assert agents.done("first") == 1 and agents.done("gated") == 1  # replayed, not re-run


async def test_retry_budget_must_be_limits(governed: Tether) -> None:
    run_id = governed.submit(agents.gated_steps, 3, options={"budget": {"steps": 2}})
    await governed.drive(run_id)
    for bad in ({"steps": -1}, {"steps": "ten"}, {}, {"steps": True}):
        with pytest.raises(InvalidInput, match="non-negative numbers"):
            governed.retry(run_id, budget=bad)
    assert governed.get(run_id).status == "halted"  # nothing was queued


def test_cli_retry_budget_is_checked_before_anything_is_written(env: dict[str, str]) -> None:
    env = {**env, "TETHER_GUARDS": "tests.cli.agents_progress:GUARDS"}
    env.pop("TETHER_TEST_GATE")
    run = cli(env, "run", "tests.cli.agents_progress:halting", "--input", "3", "--quiet")
    assert run.returncode == 0 and "halted" in run.stdout, run.stdout + run.stderr
    run_id = next(w for w in run.stdout.split() if w.startswith("r") and len(w) == 16)
    typo = cli(env, "retry", run_id, "--budget", '{"stepz": 10}')
    assert typo.returncode == 1 and "--budget: unknown budget(s) ['stepz']" in typo.stderr
    bad = cli(env, "retry", run_id, "--budget", "{steps: 10}")
    assert bad.returncode == 1 and "--budget is not valid JSON" in bad.stderr
    assert "--budget '{\"steps\": 20}'" in bad.stderr
    ok = cli(env, "retry", run_id, "--budget", '{"steps": 10}')
    assert ok.returncode == 0, ok.stderr
    assert "budget for the new attempt: steps=10" in ok.stdout and "succeeded" in ok.stdout


async def test_a_gather_branch_cancelled_by_the_failure_runs_again(tether: Tether,
                                                                  ledger: Path) -> None:
    first = await tether.run(agents.gathered, "G-1")
    assert first.status == "failed"
    assert agents.done("slow started") == 1 and agents.done("slow done") == 0
    plan = tether.retry(first.id)
    assert sorted(s.name for s in plan.rerun) == ["charge", "slow"]
    assert any(s.name == "slow" and s.why.startswith("Cancelled") for s in plan.rerun)
    assert [n for _, n in plan.replayed] == ["reserve"]
    done = await tether.drive(first.id)
    assert done.status == "succeeded" and done.result == ["slow", "charged"]
    assert agents.done("reserve") == 1 and agents.done("slow done") == 1


async def test_a_call_the_guards_denied_is_not_proposed_again(governed: Tether) -> None:
    first = await governed.run(agents.denied_then_raises, None)
    assert first.status == "failed" and "not allowed" in (first.error or "")
    plan = governed.retry(first.id)
    assert plan.rerun == ()  # the denial replays: a retry is no way around a decision
    assert [n for _, n in plan.replayed] == ["tool:delete_all"]
    assert (await governed.drive(first.id)).status == "failed"
    assert agents.done("delete_all") == 0
