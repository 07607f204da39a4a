"""What a key may look up besides runs: who it is, the agent catalogue, the tools, the tenant's
usage and KPIs, and (admin) the audit log."""

from __future__ import annotations

import datetime
import importlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tether.server.keys import Principal

from . import audit
from .auth import Admin, Viewer
from .errors import COMMON, ApiError
from .models import (
    AgentList,
    AgentOut,
    AuditEntry,
    AuditList,
    MeOut,
    ToolList,
    ToolOut,
    UsageOut,
)
from .state import state_of

router = APIRouter(prefix="/v1", tags=["info"], responses=COMMON)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@router.get("/me", response_model=MeOut)
def me(who: Viewer) -> MeOut:
    """The key's tenant, role and name (a UI logs in by calling this)."""
    return MeOut(key_id=who.key_id, tenant=who.tenant, role=who.role.name,  # type: ignore[arg-type]
                 name=who.name)


@router.get("/agents", response_model=AgentList)
def agents(request: Request, who: Viewer) -> AgentList:
    """The agents runs may be submitted for, with the guards each runs under."""
    state = state_of(request)
    return AgentList(agents=[AgentOut(**{**e.to_json(), "guards": state.guards_of(e)})
                             for e in state.catalogue.values()])


@router.get("/tools", response_model=ToolList)
def tools(request: Request, who: Viewer) -> ToolList:
    """The tools of the deployment: its tool modules and its guards' tool registries."""
    from tether.tools import ToolRegistry, ToolSources, load_sources

    state = state_of(request)
    registries: list[ToolRegistry] = []
    if state.config.tool_modules:
        registries.append(load_sources(ToolSources(modules=list(state.config.tool_modules))))
    for g in state.loaded_guards():
        reg = getattr(g, "tools", None)
        if isinstance(reg, ToolRegistry):
            registries.append(reg)
    seen: dict[tuple[str, str], ToolOut] = {}
    for reg in registries:
        for t in reg.list(all_versions=True):
            d = t.definition()
            fn = d.get("function", d)
            seen.setdefault((t.name, t.version), ToolOut(
                name=t.name, description=str(fn.get("description") or ""), version=t.version,
                side_effect=t.side_effect, idempotent=t.idempotent, hash=t.schema_hash,
                parameters=dict(fn.get("parameters") or {})))
    return ToolList(tools=sorted(seen.values(), key=lambda t: (t.name, t.version)))


@router.get("/usage", response_model=UsageOut)
def usage(request: Request, who: Viewer,
          day: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD (UTC); "
                                           "default today.")] = None) -> UsageOut:
    """The tenant's usage: the day's counters its budgets use, its runs by status, and the
    agent KPIs of `tether stats` over its newest runs."""
    from tether.guards.budget import utc_day

    if day is not None and not _is_day(day):
        raise ApiError(422, "invalid_request", f"day {day!r} is not a date as YYYY-MM-DD",
                       "query.day", "give a UTC day such as 2026-01-31")
    state = state_of(request)
    store = state.tether.store
    the_day = day or utc_day()
    runs = store.count_runs(tenant=who.tenant)  # counted by the database: all of them
    kpis = _kpis(store, who)
    return UsageOut(tenant=who.tenant, day=the_day, counters=store.get_usage(who.tenant, the_day),
                    runs=runs, kpis=kpis,
                    source="usage counters from the store; KPIs from tether.observe.kpis"
                    if kpis is not None else "usage counters from the store (tether.observe."
                    "kpis is not available in this build)")


def _is_day(text: str) -> bool:
    """YYYY-MM-DD and a day of the calendar: 2026-13-45 was answered 200 with no counters,
    as if that day had been a quiet one."""
    if not _DAY.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _kpis(store: Any, who: Principal) -> dict[str, Any] | None:
    try:
        module = importlib.import_module("tether.observe.kpis")
    except ImportError:
        return None
    report = module.collect_kpis(store, tenant=who.tenant, limit=200)
    return dict(report.to_json())


@router.get("/audit", response_model=AuditList)
def audit_log(request: Request, who: Admin,
              after: Annotated[int, Query(ge=0, le=2**62)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditList:
    """Approvals, denials, refused decisions, cancels and resolutions made through the API in
    the tenant, oldest first (page with `after`, the last id seen)."""
    rows = audit.entries(state_of(request).tether.store, who.tenant, after, limit)
    return AuditList(entries=[AuditEntry(id=r[0], ts=r[1], tenant=r[2], actor=r[3],
                                         action=r[4], run_id=r[5], detail=r[6]) for r in rows])
