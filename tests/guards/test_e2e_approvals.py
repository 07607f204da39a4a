"""Human approvals on the real runtime: restarts, denials, two-person signed approvals, twins."""

from __future__ import annotations

import base64
import os

import pytest

from tether.guards import ApprovalDecision, ApprovalError, inbox, sign_decision
from tether.models import ScriptedModel, tool_call

from . import agents_guarded as A
from .e2e_support import (
    APPROVER_KEYS,
    APPROVERS,
    journal,
    make_guards,
    open_tether,
    replay_only,
    say,
    search_forever,
)


# ----------------------------------------------------------------------- approvals
async def test_a_replayed_approval_does_not_clear_a_later_direct_call(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    args = {"card": "c", "amount": 5}
    run = await t.run(A.approved_then_direct, {"args": args})
    req = inbox.list_pending(t.store)[0].request
    inbox.decide(t, _decision(req.id, req.digest, "carol"), APPROVERS)
    assert (await t.drive(run.id)).status == "waiting"  # refunded once; now waits for "go"
    t.signal(run.id, "go", None)
    done = await t.drive(run.id)  # replays the approved call, then calls refund directly
    assert done.status == "succeeded", done.error
    assert done.result["first"] is True and isinstance(done.result["second"], str)
    assert "approve required" in done.result["second"]
    assert A.EXECUTED == [("refund", {"card": "c", "amount": 5.0})]
    t.close()


def _decision(aid: str, digest: str, approver: str, verdict: str = "approve") -> ApprovalDecision:
    """Signed when `approver` is one of the e2e approvers (carol, dave), else unsigned."""
    if approver in APPROVER_KEYS:
        return sign_decision(APPROVER_KEYS[approver], aid, verdict,  # type: ignore[arg-type]
                             approver, digest, "ok")
    return ApprovalDecision(aid, verdict, approver, "ok", digest,  # type: ignore[arg-type]
                    base64.urlsafe_b64encode(os.urandom(18)).decode())


async def test_approval_survives_worker_restart_without_rerunning(db_path):
    guards = make_guards(None)
    model = ScriptedModel([
        say("", tool_call("search", {"q": "order 42"})),
        say("", tool_call("refund", {"card": "4111111111111111", "amount": 500})),
        "refunded",
    ])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "refund order 42"})
    assert run.status == "waiting" and A.EXECUTED == [("search", {"q": "order 42"})]
    pending = inbox.list_pending(t.store)
    assert [p.request.tool for p in pending] == ["refund"]
    aid = pending[0].request.id
    t.close()  # the worker is gone; the run is a row

    t2 = open_tether(db_path, guards)
    assert inbox.decide(t2, _decision(aid, pending[0].request.digest, "carol"),
                        APPROVERS) == "approved"
    done = await t2.drive(run.id)
    assert done.status == "succeeded", done.error
    assert A.EXECUTED == [("search", {"q": "order 42"}),
                          ("refund", {"card": "4111111111111111", "amount": 500})]
    assert inbox.list_pending(t2.store) == []
    assert await replay_only(t2, guards, run.id, A.react) == done.result
    with pytest.raises(ApprovalError, match="already finished"):
        inbox.decide(t2, _decision(aid, pending[0].request.digest, "dave"))
    t2.close()


async def test_denied_approval_blocks_the_tool(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "x", "amount": 9})), "ok"]),
            guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    req = inbox.list_pending(t.store)[0].request
    assert inbox.decide(t, _decision(req.id, req.digest, "carol", "deny"), APPROVERS) == "denied"
    done = await t.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == []
    assert done.result["observations"][0]["error"]["type"] == "approval_denied"
    t.close()


async def test_two_person_approval_rejects_forged_replayed_same_person(db_path, people):
    keys, reg = people
    guards = make_guards(None, approvers=reg)
    A.reset(ScriptedModel([say("", tool_call("transfer", {"to": "acct-9", "amount": 1e4})),
                           "ok"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "pay"})
    req = inbox.list_pending(t.store, reg)[0].request
    assert req.critical and req.required == 2

    with pytest.raises(ApprovalError, match="must be signed"):
        inbox.decide(t, _decision(req.id, req.digest, "alice"))
    forged = sign_decision(keys["mallory"], req.id, "approve", "bob", req.digest)
    with pytest.raises(ApprovalError, match="invalid signature"):
        inbox.decide(t, forged, reg)
    first = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    assert inbox.decide(t, first, reg) == "pending"
    with pytest.raises(ApprovalError, match="replayed"):
        inbox.decide(t, first, reg)
    with pytest.raises(ApprovalError, match="two distinct"):
        inbox.decide(t, sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg)
    # hostile decisions sent straight to the run (bypassing the inbox) are rejected in the run
    t.signal(run.id, "approval:" + req.id, forged.to_json())
    t.signal(run.id, "approval:" + req.id, first.to_json())
    assert (await t.drive(run.id)).status == "waiting" and A.EXECUTED == []
    rejected = [e for e in journal(t, run.id) if e.kind == "log" and "rejected" in e.data]
    assert len(rejected) == 2

    second = sign_decision(keys["bob"], req.id, "approve", "bob", req.digest)
    assert inbox.decide(t, second, reg) == "approved"
    done = await t.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == [("transfer", {"to": "acct-9",
                                                                       "amount": 1e4})]
    t.close()


async def test_unknown_approval_ids(db_path):
    guards = make_guards(None)
    t = open_tether(db_path, guards)
    for bad in ("nope", "rmissing.a1", "r1.ax"):
        with pytest.raises(ApprovalError, match="unknown approval id"):
            inbox.decide(t, _decision(bad, "0" * 64, "carol"))
    t.close()


async def test_concurrent_identical_proposals_keep_their_own_verdicts(db_path):
    """Each gateway call hands its verdict to its own tool step only (per task), so a denied
    twin cannot run on its approved sibling's clearance, whichever branch gets there first."""
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    args = {"card": "c", "amount": 7}
    run = await t.run(A.twin_proposals, {"args": args})
    pending = sorted(inbox.list_pending(t.store), key=lambda p: p.request.id)
    assert [p.request.id for p in pending] == [f"{run.id}.a1", f"{run.id}.a2"]
    first, second = (p.request for p in pending)
    inbox.decide(t, _decision(second.id, second.digest, "carol", "deny"), APPROVERS)
    inbox.decide(t, _decision(first.id, first.digest, "carol"), APPROVERS)
    done = await t.drive(run.id)
    assert done.status == "succeeded", done.error
    assert [r["ok"] for r in done.result] == [True, False]
    assert done.result[1]["error"]["type"] == "approval_denied"
    assert A.EXECUTED == [("refund", {"card": "c", "amount": 7.0})]
    assert await replay_only(t, guards, run.id, A.twin_proposals) == done.result
    t.close()


class _ConsumesAfterSecondRead:
    """The store as `inbox.decide` sees it, with a worker consuming the run's pending decision
    right after the second of its reads (after `find`'s): the race between reading the pending
    signals and reading the journal, made to happen every time."""

    def __init__(self, store, consume):
        self._store, self._consume, self._reads = store, consume, 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _read(self, name, *args):
        out = getattr(self._store, name)(*args)
        self._reads += 1
        if self._reads == 2:
            self._consume()
        return out

    def pending_signals(self, run_id):
        return self._read("pending_signals", run_id)

    def load_events(self, run_id, *args):
        return self._read("load_events", run_id, *args)


def test_the_same_approver_twice_is_refused_while_a_worker_consumes_the_first(db_path, people):
    """Before: `decide` read the journal, then the pending signals; a worker consuming the first
    decision in between hid it from both reads, and the same approver's second decision was
    accepted as if it were the first (the API answered 200 instead of 409; the run itself still
    refused it). Found by a clean-clone run of tests/server/test_api.py."""
    import asyncio
    from types import SimpleNamespace

    keys, reg = people
    guards = make_guards(None, approvers=reg)
    A.reset(ScriptedModel([say("", tool_call("transfer", {"to": "acct-9", "amount": 1e4})),
                           "ok"]), guards)
    t = open_tether(db_path, guards)
    run = asyncio.run(t.run(A.react, {"task": "pay"}))
    req = inbox.list_pending(t.store, reg)[0].request
    first = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    assert inbox.decide(t, first, reg) == "pending"
    assert [s.name for s in t.store.pending_signals(run.id)] == ["approval:" + req.id]

    def worker_consumes() -> None:
        assert asyncio.run(t.drive(run.id)).status == "waiting"  # for the second approver
        assert t.store.pending_signals(run.id) == []

    racing = SimpleNamespace(store=_ConsumesAfterSecondRead(t.store, worker_consumes),
                             signal=t.signal)
    again = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    with pytest.raises(ApprovalError, match="two distinct"):
        inbox.decide(racing, again, reg)
    assert racing.store._reads >= 3 and A.EXECUTED == []
    t.close()
