"""The run's side of a human approval: journal the request, then wait durably for decisions.

`approvals.py` holds what a request and a signed decision are; `inbox.py` is the approver's side
(listing requests, sending decisions as signals). This module is what `Guards.tool` does in
between when the policy says `approve`: no worker is held while it waits.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tether.guards._state import RunGuardState
from tether.guards._steps import APPROVAL_SIGNAL, GUARD_STEP
from tether.guards.approvals import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalState,
    KeyRegistry,
    new_salt,
)
from tether.guards.errors import ApprovalError
from tether.guards.policy import PolicyDecision

if TYPE_CHECKING:
    from tether.runtime import Context

log = logging.getLogger(__name__)


async def await_approval(ctx: Context, approvers: KeyRegistry, st: RunGuardState, name: str,
                         args: Any, decision: PolicyDecision,
                         version: str | None = None) -> str | None:
    """Journal the request and wait durably (no worker held). None = approved, else the
    denial message.

    `args` are the arguments the tool will receive (validated, canonical): the request shows
    them to the approvers and its digest, which every decision signs, covers them. `version`
    is the version of the tool they approve: journaled with the request, so a run resumed
    after another version of the tool was deployed does not run that one on an approval given
    for the other (the digest covers the tool's name and arguments, not its code)."""
    st.approvals += 1
    request = ApprovalRequest(
        id=f"{ctx.run_id}.a{st.approvals}", run_id=ctx.run_id, tool=name, args=args,
        rule=decision.rule, critical=decision.critical, reason=decision.reason)

    def propose() -> dict[str, Any]:
        # the salt is drawn here, live, and journaled with the request: a replay (a resumed
        # run) reads it back and checks decisions against the same digest; a run deleted and
        # submitted again under the same id draws another, so old decisions do not fit it
        salted = replace(request, salt=new_salt())
        body = {**salted.to_json(), "salt": salted.salt}
        if version is not None:
            body["version"] = version
        return body

    recorded = await ctx.step(f"{GUARD_STEP}approval:{name}", propose, idempotent=True,
                              meta={"kind": "approval", "approval_id": request.id,
                                    "policy": decision.to_json()})
    if isinstance(recorded, dict):  # no salt: journaled before salts, digest as it was then
        request = replace(request, salt=str(recorded.get("salt") or ""))
    if isinstance(recorded, dict) and recorded.get("action_digest") != request.digest:
        # a request journaled by another version, for arguments this one would not hand the
        # tool: what the approvers sign could not be what runs
        return (f"approval {request.id} was requested for other arguments than the tool would "
                "now receive; propose the call again")
    stale = None
    if isinstance(recorded, dict) and "version" in recorded and recorded["version"] != version:
        # the decisions journaled for it are replayed as before (the same waits, the same
        # digest): only the outcome changes, the call does not run
        stale = (f"approval {request.id} was requested for version {recorded['version']!r} of "
                 f"tool '{name}', which is now version {version!r}; propose the call again")
    if not approvers.approvers():
        log.warning("approval %s waits, but GuardConfig.approvers has no registered approver: "
                    "no decision can be accepted", request.id)
    state = ApprovalState(request)
    nonces: set[str] = set()
    while state.status == "pending":
        payload = await ctx.wait_for(APPROVAL_SIGNAL + request.id)
        try:
            state.apply(ApprovalDecision.from_json(payload or {}), approvers, nonces)
        except (ApprovalError, TypeError, AttributeError) as exc:
            ctx.log(f"approval {request.id}: decision rejected: {exc}",
                    approval_id=request.id, rejected=str(exc))
    last = state.decisions[-1]
    ctx.log(f"approval {request.id}: {state.status} by "
            f"{', '.join(d.approver for d in state.decisions)}",
            approval_id=request.id, status=state.status,
            approvers=[d.approver for d in state.decisions])
    if state.status == "approved":
        return stale
    return f"denied by approver '{last.approver}': {last.reason or 'no reason given'}"
