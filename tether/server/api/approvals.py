"""The approvals inbox: pending actions of the tenant's runs, and signed decisions on them.

Every decision is an Ed25519-signed `ApprovalDecision`, exactly as `tether approve` makes it,
and the run re-checks it (signature, nonce, distinct approvers) when it resumes. The API adds
who may send one: a key with the approver role, deciding as the approver it is named after —
a key named `alice` cannot deliver `bob`'s decision, so two-person approval needs two keys of
two registered approvers. The decision is either signed by the caller (`signed`) or, when the
server was given the approver's private key (`signing_keys`), signed by the server for them.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from tether.guards import inbox
from tether.guards.approvals import (
    ApprovalDecision,
    load_private_key,
    sign_decision,
)
from tether.guards.errors import ApprovalError
from tether.guards.pii import Scrubber
from tether.runtime import RunFinished
from tether.server.keys import Principal, Role

from . import audit
from .auth import Approver, Viewer
from .errors import COMMON, CONFLICT, NOT_FOUND, ApiError, from_tether, not_found
from .models import ApprovalList, ApprovalOut, DecisionIn, DecisionOut
from .runs import own_run
from .state import ServerState, state_of

router = APIRouter(prefix="/v1", tags=["approvals"], responses=COMMON)


@router.get("/approvals", response_model=ApprovalList)
def list_approvals(request: Request, who: Viewer) -> ApprovalList:
    """Actions of the tenant's runs waiting for a decision, oldest first."""
    state = state_of(request)
    pending = inbox.list_pending(state.tether.store, state.approvers, who.tenant)
    out = [ApprovalOut(**p.to_json(), created_at=p.created_at) for p in pending]
    if not who.may(Role.approver):  # approvers sign the real arguments; others read masked
        scrub = Scrubber()
        out = [a.model_copy(update={"args": scrub.value(a.args),
                                    "reason": scrub.text(a.reason)}) for a in out]
    return ApprovalList(approvals=out)


@router.post("/approvals/{approval_id}/approve", response_model=DecisionOut,
             responses={**NOT_FOUND, **CONFLICT})
def approve(approval_id: str, body: DecisionIn, request: Request, who: Approver
            ) -> DecisionOut:
    """Approve a pending action (a critical one needs two distinct approvers)."""
    return _decide(state_of(request), who, approval_id, "approve", body)


@router.post("/approvals/{approval_id}/deny", response_model=DecisionOut,
             responses={**NOT_FOUND, **CONFLICT})
def deny(approval_id: str, body: DecisionIn, request: Request, who: Approver) -> DecisionOut:
    """Deny a pending action."""
    return _decide(state_of(request), who, approval_id, "deny", body)


def _decide(state: ServerState, who: Principal, approval_id: str,
            verdict: Literal["approve", "deny"], body: DecisionIn) -> DecisionOut:
    run_id, sep, n = approval_id.rpartition(".a")
    if not sep or not n.isdigit() or not run_id:
        raise not_found("such approval", "approval_id")
    try:  # another tenant's approval: 404 like a missing one, in the same words
        own_run(state, who.tenant, run_id)
    except ApiError:
        raise not_found("such approval", "approval_id") from None
    # one decision on a run at a time, in this process: `inbox.decide` reads, checks and
    # sends in three store calls, and two answers interleaved there were both accepted
    with state.deciding.held(run_id):
        return _decide_alone(state, who, approval_id, run_id, verdict, body)


def _decide_alone(state: ServerState, who: Principal, approval_id: str, run_id: str,
                  verdict: Literal["approve", "deny"], body: DecisionIn) -> DecisionOut:
    try:
        request, _ = inbox.find(state.tether.store, approval_id)
    except ApprovalError:
        raise not_found("such approval", "approval_id") from None
    decision = _decision(state, who, approval_id, verdict, body, request.digest)
    try:
        status = inbox.decide(state.tether, decision, state.approvers)
    except (ApprovalError, RunFinished) as exc:  # finished meanwhile (cancelled): refused too
        audit.record(state.tether.store, who, f"{verdict}_refused", run_id,
                     {"approval_id": approval_id, "why": str(exc)})
        raise from_tether(exc, "body") from None
    state.kick()
    audit.record(state.tether.store, who, verdict, run_id,
                 {"approval_id": approval_id, "status": status, "reason": decision.reason,
                  "tool": request.tool, "action_digest": request.digest,
                  "nonce": decision.nonce})
    return DecisionOut(approval_id=approval_id, verdict=verdict, approver=who.name,
                       status=status)  # type: ignore[arg-type]


def _decision(state: ServerState, who: Principal, approval_id: str,
              verdict: Literal["approve", "deny"], body: DecisionIn,
              digest: str) -> ApprovalDecision:
    if body.signed is not None:
        signed = body.signed
        if signed.approver != who.name:
            audit.record(state.tether.store, who, f"{verdict}_refused", approval_id.rpartition(
                ".a")[0], {"approval_id": approval_id, "why": "signed as another approver",
                           "signed_as": signed.approver})
            raise ApiError(403, "forbidden",
                           f"the decision is signed as {signed.approver!r}, but this key "
                           f"decides as {who.name!r}", "body.signed.approver",
                           "send your own decision with your own key")
        if signed.verdict != verdict or signed.approval_id != approval_id:
            raise ApiError(422, "invalid_request",
                           f"the signed decision says {signed.verdict} on "
                           f"{signed.approval_id!r}, the request {verdict} on {approval_id!r}",
                           "body.signed", f"POST it to /v1/approvals/{signed.approval_id}/"
                           f"{signed.verdict}")
        return ApprovalDecision.from_json(signed.model_dump())
    path = state.signing_key_path(who.name)
    if path is None:
        raise ApiError(422, "unsigned_decision",
                       f"decisions must be signed, and the server holds no key for approver "
                       f"{who.name!r}", "body.signed",
                       "send 'signed': {approval_id, verdict, approver, reason, "
                       "action_digest, nonce, signature}, signed with your Ed25519 key (the "
                       "action_digest is the approval's, in GET /v1/approvals; SignedDecision "
                       "in /openapi.json)")
    try:
        private = load_private_key(path.read_bytes())
    except (OSError, ApprovalError):
        raise ApiError(503, "signing_key_unusable",
                       f"the server's signing key for {who.name!r} cannot be read",
                       "server configuration", "ask the operator to check --signing-keys"
                       ) from None
    return sign_decision(private, approval_id, verdict, who.name, digest, body.reason)
