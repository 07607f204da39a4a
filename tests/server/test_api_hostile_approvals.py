"""Approvals attacked: two answers racing, and a decision smuggled in as a plain signal.

Racing: `inbox.decide` reads the approval's state, checks the decision against it, then sends
it — three store calls, not one transaction — and the API runs handlers in a thread pool. Two
answers at once (alice approves while bob denies a one-approver refund) both passed the check:
both got 200, the audit log recorded an approval and a denial, and only the first one the run
read counted — alice was told "approved" of a refund that was denied. Now one answer is
recorded; the other is refused (409) and audited as refused.

Smuggling: a decision travels to the run as the signal `approval:<id>`, and `POST
/v1/runs/{id}/signals` delivered any name — so an operator key (below the approver role) could
deliver a signed decision the API's approval route would check and audit, and the run obeyed
it with no audit entry. Now the signals route refuses that namespace and points to the
approvals route.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.guards.approvals import sign_decision

from . import api_support as S
from .api_hostile_support import Live, approval_of, live


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("approvals")
    with live(tmp) as s:
        yield s


def _race(served: Live, aid: str, plan: list[tuple[str, str]]) -> list[httpx.Response]:
    """Send every (key label, verdict) of `plan` at the same instant, one connection each."""
    barrier = threading.Barrier(len(plan))

    def send(step: tuple[str, str]) -> httpx.Response:
        label, verdict = step
        with served.client() as c:
            c.get("/v1/me", headers=served.auth(label))  # connected and the key known
            barrier.wait()
            return c.post(f"/v1/approvals/{aid}/{verdict}", json={"reason": label},
                          headers=served.auth(label))

    with ThreadPoolExecutor(len(plan)) as pool:
        return list(pool.map(send, plan))


def _audit(served: Live, run_id: str) -> list[tuple[str, str]]:
    with served.client() as c:
        entries = c.get("/v1/audit", params={"limit": 1000},
                        headers=served.auth("admin")).json()["entries"]
    return [(e["action"], e["actor"].split()[0]) for e in entries if e["run_id"] == run_id]


@pytest.mark.parametrize("plan", [
    [("alice", "approve"), ("bob", "deny")],
    [("alice", "approve"), ("alice", "approve"), ("alice", "deny")],
    [("alice", "deny"), ("bob", "approve"), ("alice", "approve"), ("bob", "deny")],
], ids=["approve-vs-deny", "same-approver-thrice", "four-way"])
@pytest.mark.parametrize("trial", range(4))
def test_answers_racing_on_one_approval_record_exactly_one(
        served: Live, plan: list[tuple[str, str]], trial: int) -> None:
    run_id = served.submit("assistant", f"refund {trial}")
    aid = approval_of(served, run_id)
    answers = _race(served, aid, plan)
    won = [(step, r) for step, r in zip(plan, answers, strict=True) if r.status_code == 200]
    assert len(won) == 1, [(s, r.status_code, r.text) for s, r in zip(plan, answers,
                                                                       strict=True)]
    (label, verdict), answer = won[0]
    assert answer.json()["approver"] == {"alice": "alice", "bob": "bob"}[label]
    lost = [r for r in answers if r.status_code != 200]
    assert all(r.status_code == 409 and r.json()["error"] == "decision_refused"
               for r in lost), [r.text for r in lost]
    done = served.wait(run_id, "succeeded")
    outcome = str(done["run"]["result"]["answer"])
    assert ("refunded" in outcome) == (verdict == "approve"), (verdict, outcome)
    audit = _audit(served, run_id)
    assert [a for a in audit if not a[0].endswith("_refused")] == [(verdict, label)], audit
    assert len(audit) == len(plan)  # every refused answer is in the log too


def test_a_critical_action_needs_two_approvers_even_when_they_race(served: Live) -> None:
    """Two distinct approvers at once on a two-person action: both count, once each."""
    run_id = served.submit("assistant", "transfer 250")
    aid = approval_of(served, run_id)
    answers = _race(served, aid, [("alice", "approve"), ("bob", "approve"),
                                  ("alice", "approve")])
    statuses = sorted(r.json().get("status", r.json().get("error")) for r in answers)
    assert statuses == ["approved", "decision_refused", "pending"], statuses
    done = served.wait(run_id, "succeeded")
    assert "sent 250" in str(done["run"]["result"]["answer"])


def test_an_operator_cannot_deliver_a_decision_as_a_plain_signal(
        served: Live, tmp_path: Path) -> None:
    run_id = served.submit("assistant", "refund A-7")
    aid = approval_of(served, run_id)
    with served.client() as c:
        [pending] = [a for a in c.get("/v1/approvals", headers=served.auth("viewer")).json()[
            "approvals"] if a["id"] == aid]
        signed = sign_decision(S.private_key("alice"), aid, "approve", "alice",
                               pending["action_digest"], "prepared, never sent")
        r = c.post(f"/v1/runs/{run_id}/signals",
                   json={"name": f"approval:{aid}", "payload": signed.to_json()},
                   headers=served.auth("operator"))
        assert r.status_code == 403, r.text
        err: dict[str, Any] = r.json()
        assert err["where"] == "body.name" and f"/v1/approvals/{aid}/approve" in err["fix"]
        # an approver's key is refused too: the approvals route is where a decision is
        # checked against the key's name and audited
        r = c.post(f"/v1/runs/{run_id}/signals",
                   json={"name": f"approval:{aid}", "payload": signed.to_json()},
                   headers=served.auth("admin"))
        assert r.status_code == 403, r.text
    detail = served.wait(run_id, "waiting")
    assert not [row for row in detail["timeline"] if row["kind"] == "signal_received"]
    assert _audit(served, run_id) == []
