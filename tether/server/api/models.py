"""The request and response bodies of the API, as they appear in /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tether.store import RunRecord

from .values import storable

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled", "halted"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


#: any JSON the journal keeps exactly as sent (no NaN, no lone surrogate: see values.py)
Storable = Annotated[Any, AfterValidator(storable)]
#: a budget limit: NaN or Infinity would be stored as null, i.e. no limit at all
Limit = Annotated[float, Field(allow_inf_nan=False)]


class SubmitIn(_In):
    agent: str = Field(min_length=1, max_length=200,
                       description="A name from GET /v1/agents.")
    input: Storable = Field(default=None, description="The agent's input (any JSON).")
    budget: dict[str, Limit] | None = Field(
        default=None, description="Run limits enforced by the agent's guards, e.g. "
        '{"steps": 20, "cost_usd": 0.5}.')
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="Same key, same tenant: never a second run (also the Idempotency-Key "
        "header).")


class RunOut(BaseModel):
    id: str
    tenant: str
    agent: str
    agent_name: str | None
    status: RunStatus
    input: Any = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    parent_id: str | None = None
    root_id: str
    depth: int
    created_at: float
    updated_at: float
    attempts: int
    wake_at: float | None = None
    cancel_requested: bool
    flags: list[Any]
    guards: str | None = None
    budget: dict[str, Any] | None = None
    idempotency_key: str | None = None
    omitted: list[str] = Field(default_factory=list, description=(
        "In a list of runs: the values left out for their size (`input`, `result`: over 64 "
        "KiB as JSON), null here; GET /v1/runs/{run_id} has them whole."))

    @classmethod
    def of(cls, run: RunRecord, agent_name: str | None) -> RunOut:
        return cls(
            id=run.id, tenant=run.tenant, agent=run.agent, agent_name=agent_name,
            status=run.status,  # type: ignore[arg-type]
            input=run.input, result=run.result, error=run.error, reason=run.reason,
            parent_id=run.parent_id, root_id=run.root_id or run.id, depth=run.depth,
            created_at=run.created_at, updated_at=run.updated_at, attempts=run.attempts,
            wake_at=run.wake_at, cancel_requested=run.cancel_requested,
            flags=list(run.flags or []), guards=run.options.get("guards"),
            budget=run.options.get("budget"),
            idempotency_key=(run.options.get("idempotency") or {}).get("key"),
            omitted=list(run.omitted))


class SubmitOut(BaseModel):
    run: RunOut
    created: bool = Field(description="False when an earlier request with the same "
                          "idempotency key made this run.")


class RunList(BaseModel):
    runs: list[RunOut]


class TimelineRowOut(BaseModel):
    seq: int
    t_ms: float
    kind: str
    key: str | None
    name: str | None
    took_ms: float | None
    detail: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    decision: str


class TotalsOut(BaseModel):
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    model_calls: int
    tool_calls: int
    decisions: dict[str, int]


class RunDetail(BaseModel):
    run: RunOut
    timeline: list[TimelineRowOut]
    totals: TotalsOut
    children: list[str]


class SignalIn(_In):
    name: str = Field(min_length=1, max_length=200)
    payload: Storable = None


class SignalOut(BaseModel):
    run_id: str
    signal_id: int


class CancelIn(_In):
    reason: str = Field(default="", max_length=1000)


class CancelOut(BaseModel):
    run_id: str
    cancelled: list[str]


class DeleteOut(BaseModel):
    run_id: str
    deleted: list[str]  # the run and every run below it
    events: int
    artifacts: int = 0  # swept with it: those nothing else mentions (put over an hour ago)


class ResolveIn(_In):
    action: Literal["retry", "skip", "fail"]
    result: Storable = Field(default=None, description="With skip: what the step returns.")
    key: str | None = Field(default=None, max_length=200,
                            description="The in-doubt step's key when the run has several.")


class ResolveOut(BaseModel):
    run_id: str
    resolved: str


class ApprovalOut(BaseModel):
    id: str
    run_id: str
    tool: str
    args: Any = None
    rule: str
    critical: bool
    reason: str
    action_digest: str
    tenant: str
    decided_by: list[str]
    required: int
    created_at: float


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]


class SignedDecision(_In):
    """A decision signed by the approver (`tether.guards.approvals.sign_decision`)."""

    approval_id: str = Field(max_length=300)
    verdict: Literal["approve", "deny"]
    approver: str = Field(max_length=128)
    reason: str = Field(default="", max_length=2000)
    action_digest: str = Field(max_length=128)
    nonce: str = Field(max_length=200)
    signature: str = Field(max_length=200)


class DecisionIn(_In):
    reason: str = Field(default="", max_length=2000)
    signed: SignedDecision | None = Field(
        default=None, description="Your signed decision; without it the server signs with "
        "your approver key if it was given one (--signing-keys), else refuses.")


class DecisionOut(BaseModel):
    approval_id: str
    verdict: Literal["approve", "deny"]
    approver: str
    status: Literal["pending", "approved", "denied"]


class AgentOut(BaseModel):
    name: str
    ref: str
    guards: str | None
    description: str


class AgentList(BaseModel):
    agents: list[AgentOut]


class ToolOut(BaseModel):
    name: str
    description: str
    version: str
    side_effect: str
    idempotent: bool
    hash: str
    parameters: dict[str, Any]


class ToolList(BaseModel):
    tools: list[ToolOut]


class UsageOut(BaseModel):
    tenant: str
    day: str
    counters: dict[str, float] = Field(description="The tenant's usage counters of the day "
                                       "(tokens, cost, tool calls), as its budgets count them.")
    runs: dict[str, int] = Field(description="The tenant's runs by status (all days).")
    kpis: dict[str, Any] | None = Field(
        default=None, description="`tether stats --json` over the tenant's newest 200 runs.")
    source: str


class AuditEntry(BaseModel):
    id: int
    ts: float
    tenant: str
    actor: str
    action: str
    run_id: str | None
    detail: Any = None


class AuditList(BaseModel):
    entries: list[AuditEntry]


class MeOut(BaseModel):
    key_id: str
    tenant: str
    role: Literal["viewer", "operator", "approver", "admin"]
    name: str
