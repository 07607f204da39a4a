"""The approvals inbox: pending approvals found in the journals, and decisions delivered to runs.

An approval is a journaled `guard:approval:<tool>` step (the request) followed by a durable
`wait_for("approval:<id>")`. Decisions travel as signals; the run re-validates every one of them
itself (signature, replay, distinct approvers), so the inbox only pre-checks to give the operator
a clear error right away instead of a silently ignored decision.

That check and the delivery are one transaction holding the run (`decide`): two deciders in two
processes (two servers, the CLI and the API) on one database could otherwise each read the state
before the other's decision and both be told they succeeded, an approval and a denial of one
request both "recorded", of which the run obeyed one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.guards._steps import APPROVAL_SIGNAL
from tether.guards.approvals import ApprovalDecision, ApprovalRequest, ApprovalState, KeyRegistry
from tether.guards.errors import ApprovalError
from tether.runtime import ops
from tether.store import Tx
from tether.store import vocabulary as v

_ID_SEP = ".a"


@dataclass(frozen=True)
class PendingApproval:
    request: ApprovalRequest
    tenant: str
    decided_by: tuple[str, ...]
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {**self.request.to_json(), "tenant": self.tenant,
                "decided_by": list(self.decided_by), "required": self.request.required}


def _run_id_of(approval_id: str) -> str:
    run_id, sep, n = approval_id.rpartition(_ID_SEP)
    if not sep or not run_id or not n.isdigit():
        raise ApprovalError(f"unknown approval id {approval_id!r} (ids look like <run_id>.a1; "
                            "list them with `tether approvals`)")
    return run_id


def _requests(events: list[Any]) -> dict[str, tuple[ApprovalRequest, float]]:
    out: dict[str, tuple[ApprovalRequest, float]] = {}
    for e in events:
        if e.kind == v.STEP_COMPLETED and (e.name or "").startswith(v.APPROVAL_STEP):
            d = e.data
            out[d["id"]] = (ApprovalRequest(d["id"], d["run_id"], d["tool"], d["args"], d["rule"],
                                            bool(d["critical"]), d.get("reason", ""),
                                            str(d.get("salt") or "")), e.ts)
    return out


def _history(pending: list[Any], approval_id: str,
             events: list[Any]) -> list[ApprovalDecision]:
    """Decisions already received by the run, then those delivered but not yet consumed.

    `events` must be read AFTER the pending signals are (`decide` does): a worker may consume a
    decision between the two reads, moving it from the signals to the journal; read in this
    order it is seen twice (the copy is refused as a replayed nonce), never missed — a missed
    one let the same approver decide again through the API."""
    signal = APPROVAL_SIGNAL + approval_id
    payloads = [e.data.get("payload") for e in events
                if e.kind == "signal_received" and e.name == signal and isinstance(e.data, dict)]
    payloads += [s.payload for s in pending if s.name == signal]
    out = []
    for p in payloads:
        if not isinstance(p, dict):
            continue
        try:
            out.append(ApprovalDecision.from_json(p))
        except (ApprovalError, TypeError, AttributeError):
            continue
    return out


def _state(request: ApprovalRequest, history: list[ApprovalDecision], keys: KeyRegistry
           ) -> tuple[ApprovalState, set[str]]:
    state, nonces = ApprovalState(request), set[str]()
    for d in history:
        try:
            state.apply(d, keys, nonces)
        except ApprovalError:
            nonces.add(d.nonce)  # a rejected decision's nonce is burnt too
    return state, nonces


def list_pending(store: Any, keys: KeyRegistry | None = None,
                 tenant: str | None = None) -> list[PendingApproval]:
    keys = keys or KeyRegistry()
    pending: list[PendingApproval] = []
    runs = store.list_runs(status="waiting", tenant=tenant, limit=1_000_000)
    # decided on but not run again yet (queued until a worker consumes the decision): a
    # two-person approval after its first signature still waits for its second approver
    listed = {run.id for run in runs}
    for run_id in store.runs_with_pending_signals(APPROVAL_SIGNAL):
        run = None if run_id in listed else store.get_run(run_id)
        if run is not None and not run.finished and tenant in (None, run.tenant):
            runs.append(run)
    for run in runs:
        signals = store.pending_signals(run.id)  # before the events: see _history
        events = store.load_events(run.id)
        open_signals = {e.name for e in events if e.kind == "signal_waiting"}
        for aid, (req, ts) in _requests(events).items():
            if APPROVAL_SIGNAL + aid not in open_signals:
                continue
            state, _ = _state(req, _history(signals, aid, events), keys)
            if state.status == "pending":
                pending.append(PendingApproval(req, run.tenant,
                                               tuple(d.approver for d in state.decisions), ts))
    return sorted(pending, key=lambda p: p.created_at)


def find(store: Any, approval_id: str) -> tuple[ApprovalRequest, Any]:
    run_id = _run_id_of(approval_id)
    run = store.get_run(run_id)
    if run is None:
        raise ApprovalError(f"unknown approval id {approval_id!r}: run {run_id!r} does not exist")
    found = _requests(store.load_events(run_id)).get(approval_id)
    if found is None:
        raise ApprovalError(f"unknown approval id {approval_id!r}: run {run_id!r} never asked "
                            "for it")
    return found[0], run


def decide(tether: Any, decision: ApprovalDecision, keys: KeyRegistry | None = None) -> str:
    """Check `decision` against the journal and deliver it. Returns the resulting status
    ("pending" while a second approver is needed, "approved" or "denied").

    `keys` are the deployment's approvers (the registry the workers' `GuardConfig.approvers`
    holds): a decision that is unsigned or not signed by one of them is refused here with the
    reason, as the run itself would refuse it.

    Checked twice: first on plain reads, so a refused decision never waits for the write lock
    (nor holds it: a client sending bad decisions in a loop does not slow the workers down);
    then again inside the transaction that sends it (`_deliver`), which is what decides between
    two deciders racing on one approval: the second one reads the first one's decision there
    and is refused with the reason (already approved or denied, same approver twice)."""
    keys = keys or KeyRegistry()
    store = tether.store
    request, run = find(store, decision.approval_id)
    if run.finished:
        raise ApprovalError(f"run {run.id!r} already finished ({run.status}); "
                            f"approval {decision.approval_id!r} can no longer be decided")
    _check(store, run.id, decision, keys, request)
    status: str = store.write(_deliver(run.id, decision, keys))
    tether.kick()  # this process's workers look at the run now
    return status


def _check(store: Any, run_id: str, decision: ApprovalDecision, keys: KeyRegistry,
           request: ApprovalRequest | None = None) -> str:
    """The status `decision` would give its request, on the store as it reads now; raises with
    the precise reason when it would be refused. No `request`: the one the journal holds now."""
    pending = store.pending_signals(run_id)  # first: see _history
    events = store.load_events(run_id)
    if request is None:
        found = _requests(events).get(decision.approval_id)
        if found is None:
            raise ApprovalError(f"unknown approval id {decision.approval_id!r}: run {run_id!r} "
                                "never asked for it")
        request = found[0]
    state, nonces = _state(request, _history(pending, request.id, events), keys)
    return state.apply(decision, keys, nonces)


def _deliver(run_id: str, decision: ApprovalDecision,
             keys: KeyRegistry) -> Callable[[Tx], str]:
    """The write op: hold the run, check `decision` on what is committed now, send it.

    Holding the run (`Tx.lock_run`: its row lock on PostgreSQL, where each decider's
    transaction first waits for the one before it to commit; SQLite's write lock holds the
    whole database already) is what makes the reads below current: every decision is sent
    under that lock, and a worker consuming one holds the same row (its lease check); the reads
    are the transaction's own (`Tx.load_events`, `Tx.pending_signals`). The request is read
    again too: the run may have been deleted and submitted again since `find` (another salt,
    another digest)."""
    def op(tx: Tx) -> str:
        tx.lock_run(run_id)
        run = tx.get_run(run_id)
        if run is None or run.finished:
            raise ApprovalError(
                f"run {run_id!r} " + ("no longer exists" if run is None else
                                      f"already finished ({run.status})") +
                f"; approval {decision.approval_id!r} can no longer be decided")
        status = _check(tx, run_id, decision, keys)
        ops.send_signal(run_id, APPROVAL_SIGNAL + decision.approval_id, decision.to_json())(tx)
        return status
    return op
