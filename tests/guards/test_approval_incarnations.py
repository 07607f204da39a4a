"""An approval request belongs to one incarnation of its run.

An approval id is `<run_id>.aN`, and a run submitted with an idempotency key gets the id that key
always gives: after the run is deleted, the same key makes a run with the same id, whose first
approval is the same `<run_id>.a1`, for the same action when the input is the same. Before, a
decision signed for the deleted run's request (an approval link, a decision kept by a script, an
audit record's copy) was then a valid decision for the new one. Now each request draws a salt,
journaled with it and covered by the digest every decision signs: the new run's request has
another digest, and the old decision is refused by the inbox and by the run. The salt is read
back from the journal on replay, so a resumed run checks decisions against the digest it
journaled; a request journaled before salts existed keeps its digest.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest

from tether.guards import ApprovalError, inbox, sign_decision
from tether.guards.approvals import ApprovalDecision, ApprovalRequest, action_digest

from . import agents_guarded as A
from .e2e_support import APPROVER_KEYS, APPROVERS, make_guards, open_tether, replay_only

REFUND = [["refund", {"card": "c", "amount": 5}]]
DONE = [("refund", {"card": "c", "amount": 5.0})]


def _guards() -> Any:
    guards = make_guards(None)
    A.reset(None, guards)  # type: ignore[arg-type]  # A.propose calls no model
    A.STATE["guards"] = guards
    return guards


def _signed(request: ApprovalRequest, verdict: str = "approve") -> ApprovalDecision:
    return sign_decision(APPROVER_KEYS["carol"], request.id, verdict,  # type: ignore[arg-type]
                         "carol", request.digest, "ok")


async def test_a_decision_for_a_deleted_run_does_not_decide_the_run_resubmitted(db_path):
    t = open_tether(db_path, _guards())
    first = t.submit(A.propose, REFUND, idempotency_key="order-42")
    assert (await t.drive(first)).status == "waiting"
    [old] = inbox.list_pending(t.store)
    kept = _signed(old.request)  # signed, never sent: a link in a mail, a script's file
    t.cancel(first)
    t.delete(first)

    second = t.submit(A.propose, REFUND, idempotency_key="order-42")
    assert second == first  # the key's run id; its first approval is `.a1` again
    assert (await t.drive(second)).status == "waiting"
    [new] = inbox.list_pending(t.store)
    assert new.request.id == old.request.id and new.request.args == old.request.args

    with pytest.raises(ApprovalError, match="earlier request under this id"):
        inbox.decide(t, kept, APPROVERS)
    assert t.store.pending_signals(second) == []
    assert new.request.digest != old.request.digest
    # delivered past the inbox (a plain signal): the run refuses it as well
    t.signal(second, "approval:" + new.request.id, kept.to_json())
    assert (await t.drive(second)).status == "waiting" and A.EXECUTED == []
    assert [p.request.digest for p in inbox.list_pending(t.store)] == [new.request.digest]

    assert inbox.decide(t, _signed(new.request), APPROVERS) == "approved"
    done = await t.drive(second)
    assert done.status == "succeeded" and done.result[0]["ok"] is True, done.result
    assert A.EXECUTED == DONE
    t.close()


async def test_a_resumed_run_checks_decisions_against_the_digest_it_journaled(db_path):
    guards = _guards()
    t = open_tether(db_path, guards)
    run = await t.run(A.propose, REFUND)
    [before] = inbox.list_pending(t.store)
    assert before.request.salt
    t.close()  # the worker is gone (a crash, a deploy): the run is a row

    t2 = open_tether(db_path, _guards())
    [after] = inbox.list_pending(t2.store)
    assert after.request == before.request  # same id, salt and digest
    # signed over the digest read before the restart, checked by a run that replays its journal
    assert inbox.decide(t2, _signed(before.request), APPROVERS) == "approved"
    done = await t2.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == DONE, done.result
    assert await replay_only(t2, A.STATE["guards"], run.id, A.propose) == done.result
    t2.close()


def _unsalt(value: Any) -> bool:
    """Make the journaled request in `value` one of the version before salts; True if found."""
    if isinstance(value, dict):
        if "salt" in value and "action_digest" in value:
            del value["salt"]
            value["action_digest"] = action_digest(value["tool"], value["args"])
            return True
        return any(_unsalt(v) for v in value.values())
    if isinstance(value, list):
        return any(_unsalt(v) for v in value)
    return False


async def test_a_request_journaled_before_salts_keeps_its_digest(db_path):
    """A run waiting when this version is deployed: its request has no salt, and the decisions
    made for it sign the digest of the action alone; they still decide it."""
    t = open_tether(db_path, _guards())
    run = await t.run(A.propose, REFUND)
    t.close()
    db = sqlite3.connect(db_path, isolation_level=None)
    [(seq, data)] = db.execute(
        "SELECT seq, data FROM events WHERE run_id=? AND kind='step_completed' "
        "AND name LIKE 'guard:approval:%'", (run.id,)).fetchall()
    body = orjson.loads(data)
    assert _unsalt(body)
    db.execute("UPDATE events SET data=? WHERE run_id=? AND seq=?",
               (orjson.dumps(body), run.id, seq))
    db.close()

    t2 = open_tether(db_path, _guards())
    [p] = inbox.list_pending(t2.store)
    assert p.request.salt == "" and p.request.digest == action_digest("refund", p.request.args)
    assert inbox.decide(t2, _signed(p.request), APPROVERS) == "approved"
    done = await t2.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == DONE, done.result
    t2.close()


def test_the_salt_is_covered_by_the_digest_and_stays_out_of_the_listing():
    request = ApprovalRequest("r1.a1", "r1", "refund", {"amount": 5}, "refunds", salt="s1")
    assert request.digest != ApprovalRequest("r1.a1", "r1", "refund", {"amount": 5},
                                             "refunds", salt="s2").digest
    assert request.digest != action_digest("refund", {"amount": 5})
    assert "salt" not in request.to_json()
    assert request.to_json()["action_digest"] == request.digest
