"""Approvals decided by the MCP client's user, through elicitation, where the client supports it.

A call the policy sends to a human waits durably for a signed decision. When the client that
made the call declared the `elicitation` capability and the deployment named an approver for
it, the server asks the client's user (`elicitation/create`: the tool, its arguments, the rule)
and signs the answer as that approver with its key, delivered like any decision
(`guards.inbox.decide`: checked against the journal and the approvers' keys). So the approver
must be registered in the guards' `approvers`, by the operator, on purpose: the user of an MCP
client then approves that client's calls, which is exactly what elicitation is for. A critical
rule (two approvers) still needs a second, independent signature; a user who dismisses the
question leaves the approval pending for the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tether.guards import ApprovalError, inbox, sign_decision
from tether.store.vocabulary import APPROVAL_SIGNAL

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from mcp.server.context import ServerRequestContext

    from tether.guards import KeyRegistry
    from tether.runtime import Tether

log = logging.getLogger("tether.server.mcp")

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve this call?"},
        "reason": {"type": "string", "title": "Reason (optional)"},
    },
    "required": ["approve"],
}


@dataclass(frozen=True)
class ElicitationApprover:
    """Who signs what a client's user decides by elicitation (registered in the approvers)."""

    name: str
    key: Ed25519PrivateKey


class ElicitedApprovals:
    def __init__(self, tether: Tether, approver: ElicitationApprover,
                 approvers: KeyRegistry) -> None:
        if approver.name not in approvers:
            raise ValueError(
                f"elicitation approver {approver.name!r} is not a registered approver: add its "
                "public key to the guards' approvers (--keys), or approvals by elicitation could "
                "never be accepted")
        self.tether = tether
        self.approver = approver
        self.approvers = approvers

    @staticmethod
    def client_can_answer(ctx: ServerRequestContext[Any, Any]) -> bool:
        caps = ctx.session.client_capabilities
        return caps is not None and caps.elicitation is not None and ctx.session.can_send_request

    def pending(self, run_id: str) -> list[str]:
        """The approval ids the run waits for now."""
        return [name[len(APPROVAL_SIGNAL):] for name in self.tether.awaited_signals(run_id)
                if name.startswith(APPROVAL_SIGNAL)]

    async def ask(self, ctx: ServerRequestContext[Any, Any], run_id: str) -> bool:
        """Ask the client's user about each approval the run waits for; True if one was
        decided (approved or denied), False if the user dismissed every question or every
        answer came too late (another approver decided first)."""
        decided = False
        for approval_id in self.pending(run_id):
            request, _ = inbox.find(self.tether.store, approval_id)
            args = orjson.dumps(request.args).decode()
            message = (f"Tether asks you to approve a tool call (approval {approval_id}).\n"
                       f"Tool: {request.tool}\nArguments: {args}\n"
                       f"Rule: {request.rule} — {request.reason}")
            answer = await ctx.session.elicit_form(message, _SCHEMA,
                                                   related_request_id=ctx.request_id)
            if answer.action == "cancel":
                continue
            content = answer.content or {}
            verdict = "approve" if answer.action == "accept" and content.get("approve") is True \
                else "deny"
            reason = str(content.get("reason") or
                         ("declined in the MCP client" if verdict == "deny" else ""))
            decision = sign_decision(self.approver.key, approval_id, verdict,  # type: ignore[arg-type]
                                     self.approver.name, request.digest, reason)
            try:
                inbox.decide(self.tether, decision, self.approvers)
            except ApprovalError as exc:
                # decided meanwhile by another approver (`tether approve` while the question
                # was open), or the run ended: the call's answer is the run's outcome, not this
                # refusal — an error here told the client its call failed while it ran
                log.warning("approval %s: the MCP client's answer was not delivered: %s",
                            approval_id, exc)
                continue
            decided = True
        return decided
