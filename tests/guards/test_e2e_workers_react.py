"""ReAct under the guards a run declares, executed by real `tether worker` processes.

The in-process versions of these scenarios are in test_e2e_react.py; here the worker processes
are started with no guards of their own: what they enforce comes from the run's `--guards`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tether import Tether
from tether.guards.pii import new_vault_key

from .test_e2e_workers_governed import WorkerProcess, cli, ledger, wait_status

pytestmark = pytest.mark.slow
AGENTS = "tests.guards.agents_workers"
GUARDS = f"{AGENTS}:GUARDS"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "TETHER_DB": str(tmp_path / "t.db"), "COLUMNS": "200",
            "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt"), "PYTHONPATH": str(root),
            "TETHER_TEST_MODEL_LOG": str(tmp_path / "model.jsonl"),
            "TETHER_VAULT_KEY": new_vault_key(), "HF_HUB_OFFLINE": "1"}


def run_in_worker(env: dict[str, str], scenario: str, *finals: str) -> tuple[str, str]:
    run_id = cli("run", "--detach", "--guards", GUARDS, f"{AGENTS}:support_agent", "--input",
                 json.dumps(f"[scenario {scenario}] help the customer"), env=env).stdout.strip()
    worker = WorkerProcess(env)
    try:
        status = wait_status(env, run_id, *finals, timeout=120)
    finally:
        worker.stop()
    return run_id, status


def test_denied_call_is_an_observation_then_the_right_call_runs(env: dict[str, str]) -> None:
    run_id, status = run_in_worker(env, "deny", "succeeded", "failed", "halted")
    t = Tether(env["TETHER_DB"])
    run = t.get(run_id)
    t.close()
    assert status == "succeeded", run.error
    assert run.result["answer"] == "The report went to ops."
    assert ledger(env) == ["send_email"]  # only the internal mail ran
    refused = run.result["trajectory"][0]["calls"][0]
    assert refused["ok"] is False and "policy_denied" in refused["observation"]


def test_pii_from_a_tool_never_reaches_the_model(env: dict[str, str]) -> None:
    _, status = run_in_worker(env, "pii", "succeeded", "failed", "halted")
    assert status == "succeeded"
    sent = Path(env["TETHER_TEST_MODEL_LOG"]).read_text()
    assert len(sent.splitlines()) == 2  # the tool's answer went back in the second request
    for secret in ("jane.doe@corp.example", "415 555 0134", "4111 1111 1111 1111"):
        assert secret not in sent
    assert "[EMAIL_" in sent  # masked, not dropped: the model still sees that there is one
    assert ledger(env) == ["crm_lookup"]


def test_honeypot_call_flags_the_run(env: dict[str, str]) -> None:
    run_id, status = run_in_worker(env, "honeypot", "succeeded", "failed", "halted")
    assert status == "succeeded"
    assert ledger(env) == []  # the honeypot pretended; nothing ran
    flagged = cli("runs", "--flagged", "--json", env=env).stdout
    assert run_id in flagged and "honeypot" in flagged


def test_semantic_loop_is_intervened_then_halted(env: dict[str, str]) -> None:
    run_id, status = run_in_worker(env, "loop", "succeeded", "failed", "halted")
    t = Tether(env["TETHER_DB"])
    run = t.get(run_id)
    t.close()
    assert status == "halted" and "semantic_loop" in (run.reason or ""), run.reason
    requests = [json.loads(line) for line in Path(env["TETHER_TEST_MODEL_LOG"]).read_text()
                .splitlines()]
    warned = [i for i, msgs in enumerate(requests)
              if "going in circles" in (msgs[-1].get("content") or "")]
    assert warned, "the model was never warned before the halt"  # intervened, then halted
