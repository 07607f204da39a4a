"""Issue 13 §5: every approval decision comes from a registered approver, proven by signature.

Before, a non-critical approval accepted a decision from anyone who typed a name: no key, no
signature, no registration. Attacks here are made on the approval state machine, through the
inbox, straight to the run as signals, and through the `tether approve|deny` CLI; the refund tool
counts its real executions in a file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tether import Tether
from tether.cli import app
from tether.guards import (
    ApprovalDecision,
    ApprovalError,
    ApprovalRequest,
    ApprovalState,
    GuardConfig,
    Guards,
    KeyRegistry,
    generate_keypair,
    inbox,
    loads_policy,
    sign_decision,
)
from tether.tools import ToolRegistry, tool

POLICY = """
name: refunds
rules:
  - {id: refunds, tools: refund, effect: approve}
"""
STATE: dict[str, Any] = {}


@tool(side_effect="write")
def refund(order: str, amount: float) -> str:
    """Refund an order (each real execution is a line in the ledger file)."""
    with open(STATE["ledger"], "a", encoding="utf-8") as fh:
        fh.write(f"{order} {amount}\n")
    return "refunded"


REGISTRY = ToolRegistry([refund])


def refunds() -> list[str]:
    path = Path(STATE["ledger"])
    return path.read_text().splitlines() if path.exists() else []


async def ask(ctx: Any, order: str) -> dict[str, Any]:
    guards: Guards = STATE["guards"]
    return (await guards.tool(ctx, "refund", {"order": order, "amount": 50})).model_dump(
        mode="json")


def unsigned(req: ApprovalRequest, approver: str, verdict: str = "approve") -> ApprovalDecision:
    return ApprovalDecision(req.id, verdict, approver, "trust me", req.digest,  # type: ignore[arg-type]
                            base64.urlsafe_b64encode(os.urandom(18)).decode())


def request() -> ApprovalRequest:
    return ApprovalRequest("run-1.a1", "run-1", "refund", {"order": "A-7", "amount": 50.0},
                           "refunds")


@pytest.fixture
def waiting(db_path: str, tmp_path: Path, people: Any) -> Any:
    """A run waiting for a non-critical approval, under guards that know alice, bob, mallory."""
    _keys, reg = people
    STATE["ledger"] = str(tmp_path / "ledger.txt")
    guards = Guards(GuardConfig(policy=loads_policy(POLICY, "refunds.yaml"), pii=False,
                                approvers=reg), tools=REGISTRY)
    STATE["guards"] = guards
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    yield t
    t.close()


async def _pending(t: Tether, reg: KeyRegistry) -> tuple[str, ApprovalRequest]:
    run = await t.run(ask, "A-7")
    assert run.status == "waiting", run.error
    [pending] = inbox.list_pending(t.store, reg)
    return run.id, pending.request


# ------------------------------------------------------------------ the state machine
@pytest.mark.parametrize("approver", ["carol", "alice"], ids=["unregistered", "registered-name"])
@pytest.mark.parametrize("verdict", ["approve", "deny"])
def test_an_unsigned_decision_is_rejected_even_when_not_critical(people, approver, verdict):
    _keys, reg = people
    state = ApprovalState(request())
    with pytest.raises(ApprovalError, match="must be signed"):
        state.apply(unsigned(request(), approver, verdict), reg, set())
    assert state.status == "pending" and state.decisions == []


def test_a_self_signed_decision_from_an_unregistered_approver_is_rejected(people):
    _keys, reg = people
    d = sign_decision(Ed25519PrivateKey.generate(), "run-1.a1", "approve", "carol",
                      request().digest)
    with pytest.raises(ApprovalError, match="no registered key"):
        ApprovalState(request()).apply(d, reg, set())


def test_a_decision_signed_with_another_approvers_key_is_rejected(people):
    keys, reg = people
    d = sign_decision(keys["mallory"], "run-1.a1", "approve", "alice", request().digest)
    with pytest.raises(ApprovalError, match="invalid signature"):
        ApprovalState(request()).apply(d, reg, set())


def test_no_registry_means_no_decision_is_accepted(people):
    keys, _reg = people
    d = sign_decision(keys["alice"], "run-1.a1", "approve", "alice", request().digest)
    with pytest.raises(ApprovalError, match="no registered key"):
        ApprovalState(request()).apply(d, KeyRegistry(), set())


def test_a_registered_approvers_signed_decision_approves(people):
    keys, reg = people
    d = sign_decision(keys["alice"], "run-1.a1", "approve", "alice", request().digest)
    assert ApprovalState(request()).apply(d, reg, set()) == "approved"


# -------------------------------------------------------------------- on the runtime
async def test_unsigned_decisions_through_the_inbox_are_refused(waiting, people):
    _keys, reg = people
    _run_id, req = await _pending(waiting, reg)
    for who in ("carol", "alice"):
        with pytest.raises(ApprovalError, match="must be signed"):
            inbox.decide(waiting, unsigned(req, who), reg)
    assert refunds() == []


async def test_unsigned_decisions_sent_straight_to_the_run_are_rejected_by_the_run(
        waiting, people):
    keys, reg = people
    run_id, req = await _pending(waiting, reg)
    # bypassing the inbox: a forged approval and a forged denial, as raw signals
    waiting.signal(run_id, "approval:" + req.id, unsigned(req, "carol").to_json())
    waiting.signal(run_id, "approval:" + req.id, unsigned(req, "bob", "deny").to_json())
    waiting.signal(run_id, "approval:" + req.id, sign_decision(
        Ed25519PrivateKey.generate(), req.id, "approve", "eve", req.digest).to_json())
    run = await waiting.drive(run_id)
    assert run.status == "waiting" and refunds() == []
    rejected = [e for e in waiting.events(run_id) if e.kind == "log" and "rejected" in e.data]
    assert len(rejected) == 3
    assert inbox.list_pending(waiting.store, reg)[0].decided_by == ()
    # the registered approver's signed decision is the one that counts
    inbox.decide(waiting, sign_decision(keys["bob"], req.id, "approve", "bob", req.digest), reg)
    done = await waiting.drive(run_id)
    assert done.status == "succeeded" and done.result["ok"] is True
    assert refunds() == ["A-7 50.0"]


# ------------------------------------------------------------------------------ the CLI
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, " ".join(r.output.split())


async def test_the_cli_refuses_unsigned_and_unregistered_decisions(waiting, people, tmp_path,
                                                                   db_path, monkeypatch):
    _keys, reg = people
    monkeypatch.delenv("TETHER_APPROVERS", raising=False)
    _run_id, req = await _pending(waiting, reg)
    alice_key, alice_pub = generate_keypair()
    (tmp_path / "alice.key").write_text(alice_key)
    approvers = tmp_path / "approvers.yaml"
    approvers.write_text(json.dumps({"alice": alice_pub}))

    code, out = cli("approve", req.id, "--db", db_path, "--approver", "mallory")
    assert code == 1 and "must be signed" in out and "--key" in out, out
    code, out = cli("deny", req.id, "--db", db_path, "--approver", "mallory")
    assert code == 1 and "must be signed" in out, out
    code, out = cli("approve", req.id, "--db", db_path, "--approver", "alice",
                    "--key", str(tmp_path / "alice.key"))
    assert code == 1 and "no registered key" in out and "--keys" in out, out
    code, out = cli("approve", req.id, "--db", db_path, "--approver", "bob",
                    "--key", str(tmp_path / "alice.key"), "--keys", str(approvers))
    assert code == 1 and "no registered key" in out, out
    assert inbox.list_pending(waiting.store, reg)[0].decided_by == ()
    assert refunds() == []
