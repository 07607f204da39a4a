"""Runs: submit, list, read with the timeline, signal, cancel, resolve, delete.

Every lookup goes through `_own_run`, which answers 404 for a run of another tenant exactly as
for a run that does not exist. Handlers are plain functions: FastAPI runs them in its thread
pool, so the store's blocking calls never stall the event loop the embedded worker runs on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from tether.guards.pii import Scrubber
from tether.observe import clip_detail, timeline_rows, timeline_totals
from tether.runtime import InvalidInput, ops
from tether.runtime.client import IdempotencyConflict
from tether.runtime.refs import portable_ref
from tether.server.keys import Role
from tether.store import RunRecord, dumps
from tether.store.vocabulary import APPROVAL_SIGNAL

from . import audit
from .auth import Admin, KeyRevoked, Operator, SubmitOperator, Viewer, recheck_of, unknown_key
from .errors import COMMON, CONFLICT, NOT_FOUND, ApiError, from_tether, not_found, unknown_agent
from .models import (
    CancelIn,
    CancelOut,
    DeleteOut,
    ResolveIn,
    ResolveOut,
    RunDetail,
    RunList,
    RunOut,
    RunStatus,
    SignalIn,
    SignalOut,
    SubmitIn,
    SubmitOut,
    TimelineRowOut,
    TotalsOut,
)
from .state import ServerState, commit, state_of

router = APIRouter(prefix="/v1", tags=["runs"], responses=COMMON)
RunId = Annotated[str, "the run's id"]


def own_run(state: ServerState, tenant: str, run_id: str) -> RunRecord:
    run = state.tether.store.get_run(run_id) if len(run_id) <= 100 else None
    if run is None or run.tenant != tenant:
        raise not_found("such run", "run_id")
    return run


def _name_of(state: ServerState, ref: str) -> str | None:
    # a run records its agent as `portable_ref` made it (a file reference absolute), and the
    # catalogue may say `shop.py:support`: compared as written, such runs had no name
    for name, entry in state.catalogue.items():
        if entry.ref == ref or portable_ref(entry.ref) == ref:
            return name
    return None


def run_out(state: ServerState, run: RunRecord, *, redact: bool = False) -> RunOut:
    """`redact`: PII and secrets in the input, result, error and reason masked (a viewer key
    reads no more than the run's model did; operators read the journal as it is)."""
    out = RunOut.of(run, _name_of(state, run.agent))
    if not redact:
        return out
    scrub = Scrubber()
    return out.model_copy(update={
        "input": scrub.value(out.input), "result": scrub.value(out.result),
        "error": scrub.text(out.error) if out.error else out.error,
        "reason": scrub.text(out.reason) if out.reason else out.reason})


@router.post("/runs", status_code=201, response_model=SubmitOut,
             responses={**NOT_FOUND, **CONFLICT,
                        200: {"model": SubmitOut,
                              "description": "Already submitted with this idempotency key."}})
async def submit_run(body: SubmitIn, request: Request, response: Response, who: SubmitOperator,
                     idempotency_key: Annotated[str | None, Header(min_length=1,
                                                                   max_length=255)] = None
                     ) -> SubmitOut:
    """Queue a run of a catalogued agent, under the guards its catalogue entry declares.
    Answers at once; the run executes on a worker (GET the run or stream its events).
    Concurrent submits share transactions (the server's group committer)."""
    state = state_of(request)
    entry = state.catalogue.get(body.agent)
    if entry is None:
        raise unknown_agent(body.agent, state.catalogue)
    guards = state.guards_of(entry)
    options: dict[str, object] = {}
    if body.budget is not None:
        if guards is None:
            raise ApiError(422, "invalid_request",
                           f"agent {body.agent!r} runs without guards: nothing would enforce "
                           "a budget", "body.budget",
                           'leave "budget" out, or ask the server\'s operator to give the '
                           "agent guards (its entry in the agents file)")
        from tether.guards.budget import BudgetLimits

        try:
            options["budget"] = BudgetLimits.from_json(body.budget).to_json()
        except (ValueError, TypeError) as exc:
            raise ApiError(422, "invalid_request", str(exc), "body.budget",
                           "give known limits as non-negative numbers") from None
    key = body.idempotency_key or idempotency_key
    if body.idempotency_key and idempotency_key and body.idempotency_key != idempotency_key:
        raise ApiError(422, "invalid_request", "two different idempotency keys given",
                       "Idempotency-Key header", "give the key once (header or body)")
    args = (body.input,) if "input" in body.model_fields_set else ()
    recheck = recheck_of(request)
    try:
        run, create = state.tether.prepare(entry.ref, *args, tenant=who.tenant,
                                           idempotency_key=key, options=options, guards=guards)

        def op(tx: Any) -> tuple[bool, RunRecord]:
            if recheck is not None:
                recheck.verify(tx)  # the key, taken from memory, is read in this transaction
            return create(tx), tx.get_run(run.id)

        created, record = await commit(state, op)
    except KeyRevoked as exc:
        state.forget_key(str(exc))
        raise unknown_key() from None
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc), "idempotency key",
                       "use a new idempotency key for a different request") from None
    except InvalidInput as exc:  # past the schema (the key's length too), only the input is left
        raise from_tether(exc, "body.input", {portable_ref(entry.ref): body.agent}) from None
    except Exception as exc:
        raise from_tether(exc, "body") from None
    if created:
        state.kick()
    else:
        response.status_code = 200
    return SubmitOut(run=run_out(state, record), created=created)


@router.get("/runs", response_model=RunList)
def list_runs(request: Request, who: Viewer,
              status: Annotated[list[RunStatus] | None, Query()] = None,
              agent: Annotated[str | None, Query(max_length=200,
                                                 description="An agent name.")] = None,
              parent_id: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> RunList:
    """The tenant's runs, newest first."""
    state = state_of(request)
    ref = None
    if agent is not None:
        entry = state.catalogue.get(agent)
        if entry is None:
            return RunList(runs=[])
        ref = portable_ref(entry.ref)  # as the runs record it
    runs = state.tether.store.list_runs(status=status or None, tenant=who.tenant,
                                        parent_id=parent_id, agent=ref, limit=limit)
    viewer = not who.may(Role.operator)
    return RunList(runs=[run_out(state, r, redact=viewer) for r in runs])


@router.get("/runs/{run_id}", response_model=RunDetail, responses=NOT_FOUND)
def get_run(run_id: str, request: Request, who: Viewer) -> RunDetail:
    """The run with its timeline: one row per journal event (the same rows `tether show`
    prints), with durations, tokens, cost and the guards' decisions."""
    state = state_of(request)
    run = own_run(state, who.tenant, run_id)
    events = state.tether.store.load_events(run.id)
    totals = timeline_totals(events)
    viewer = not who.may(Role.operator)  # reads no more than the model: PII masked
    return RunDetail(
        run=run_out(state, run, redact=viewer),
        timeline=[TimelineRowOut(**{**r.to_json(), "detail": clip_detail(
            r.detail, "the run's events, GET /v1/runs/{run_id}/events")})
            for r in timeline_rows(events, redact=viewer)],
        totals=TotalsOut(tokens_in=totals.tokens_in, tokens_out=totals.tokens_out,
                         cost_usd=totals.cost_usd, model_calls=totals.model_calls,
                         tool_calls=totals.tool_calls, decisions=totals.decisions),
        children=[c.id for c in state.tether.store.list_runs(parent_id=run.id, tenant=who.tenant,
                                                             limit=1000)])


@router.post("/runs/{run_id}/signals", status_code=202, response_model=SignalOut,
             responses={**NOT_FOUND, **CONFLICT})
def signal_run(run_id: str, body: SignalIn, request: Request, who: Operator) -> SignalOut:
    """Deliver a signal the run waits for (`ctx.wait_for(name)`). Not a decision on an
    approval (`approval:<id>`): those go through POST /v1/approvals/{id}/approve or deny, which
    need the approver role, bind the decision to the key's approver and audit it."""
    state = state_of(request)
    run = own_run(state, who.tenant, run_id)
    if body.name.startswith(APPROVAL_SIGNAL):
        approval_id = body.name[len(APPROVAL_SIGNAL):]
        raise ApiError(403, "forbidden",
                       f"signal {body.name[:120]!r} would deliver a decision on an approval; "
                       "decisions are not sent as signals", "body.name",
                       f"approve or deny through POST /v1/approvals/{approval_id[:100]}/approve "
                       "(or /deny) with an approver's key")
    try:
        signal_id = state.tether.signal(run.id, body.name, body.payload)
    except Exception as exc:
        raise from_tether(exc, "run_id") from None
    state.kick()
    return SignalOut(run_id=run.id, signal_id=signal_id)


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=CancelOut,
             responses={**NOT_FOUND, **CONFLICT})
def cancel_run(run_id: str, request: Request, who: Operator,
               body: CancelIn | None = None) -> CancelOut:
    """Cancel the run and its descendants (recorded in the audit log)."""
    state = state_of(request)
    run = own_run(state, who.tenant, run_id)
    reason = (body.reason if body else "") or f"cancelled by {who.name} through the API"
    try:  # the cancel and its audit entry commit together, or neither does
        touched: list[str] = state.tether.store.write(audit.with_entry(
            ops.request_cancel(run.id, reason), who, "cancel", run.id,
            lambda done: {"reason": reason, "cancelled": done}))
    except Exception as exc:
        raise from_tether(exc, "run_id") from None
    state.cancelled(touched)
    return CancelOut(run_id=run.id, cancelled=list(touched))


@router.delete("/runs/{run_id}", response_model=DeleteOut, responses={**NOT_FOUND, **CONFLICT})
def delete_run(run_id: str, request: Request, who: Admin) -> DeleteOut:
    """Delete a finished run and every run below it, journal and all (retention, erasure).
    Admins only; 409 while anything in the tree has not finished, or for a child run (a tree
    goes whole). The audit log keeps who deleted what."""
    state = state_of(request)
    run = own_run(state, who.tenant, run_id)
    try:
        deleted = state.tether.delete(run.id)
    except Exception as exc:
        raise from_tether(exc, "run_id") from None
    audit.record(state.tether.store, who, "delete", run.id,
                 {"deleted": deleted.runs, "events": deleted.events,
                  "artifacts": deleted.artifacts})
    return DeleteOut(run_id=run.id, deleted=deleted.runs, events=deleted.events,
                     artifacts=deleted.artifacts)


@router.post("/runs/{run_id}/resolve", response_model=ResolveOut,
             responses={**NOT_FOUND, **CONFLICT})
def resolve_run(run_id: str, body: ResolveIn, request: Request, who: Operator) -> ResolveOut:
    """Decide an in-doubt step: run it again (retry), return `result` without running it
    (skip), or fail it (recorded in the audit log)."""
    state = state_of(request)
    run = own_run(state, who.tenant, run_id)
    try:
        dumps(body.result)
    except TypeError as exc:  # what the store cannot hold (an integer over 64 bits, ...)
        raise ApiError(422, "invalid_request", f"result cannot be stored: {exc}",
                       "body.result", "give a JSON value the journal can hold") from None
    try:  # the resolution and its audit entry commit together, or neither does
        target = str(state.tether.store.write(audit.with_entry(
            ops.resolve_in_doubt(run.id, body.action, body.result, body.key), who,
            f"resolve:{body.action}", run.id, lambda done: {"key": done})))
    except Exception as exc:
        raise from_tether(exc, "run_id") from None
    state.kick()
    return ResolveOut(run_id=run.id, resolved=target)
