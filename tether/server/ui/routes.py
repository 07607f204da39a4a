"""The web UI's pages and forms, under /ui.

Every page authenticates with the API's own role dependencies (`Viewer`, `Operator`,
`Approver`: the session cookie became the key's Authorization header in `SessionAuth`) and
reads or acts through the API's own handlers, so tenant scoping, roles, signing and the audit
log are the API's, not a copy. A form that changes something also needs the session's CSRF
token and, when the browser sends one, an Origin of this server.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, get_args
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from tether.server.keys import KeyLookup, Principal, Role

from ..api import approvals, info, runs, stream
from ..api.auth import Approver, Operator, Viewer
from ..api.errors import ApiError
from ..api.models import DecisionIn, RunStatus, SubmitIn
from ..api.state import commit, state_of
from . import views
from .render import PAGE_VALUE_MAX, HtmlRoute, args_json, page, redirect
from .session import COOKIE, LOGIN_COOKIE, PREFIX, Session, Sessions, same_token

router = APIRouter(prefix=PREFIX, route_class=HtmlRoute, include_in_schema=False)
STATUSES: tuple[str, ...] = get_args(RunStatus)
_FORM = "application/x-www-form-urlencoded"


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.tether_ui_sessions
    return found


def _session(request: Request) -> Session | None:
    return sessions_of(request).get(request.cookies.get(COOKIE))


def _csrf(request: Request) -> str:
    found = _session(request)
    return found.csrf if found is not None else ""


def _base(request: Request, who: Principal, **extra: Any) -> dict[str, Any]:
    request.state.who = who
    return {"who": who, "csrf": _csrf(request), "can_submit": who.may(Role.operator),
            "can_decide": who.may(Role.approver), **extra}


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form (the body size limit of the API applies to it)."""
    body = await request.body()
    if body and request.headers.get("content-type", "").split(";")[0].strip() != _FORM:
        raise ApiError(415, "unsupported_media_type", "this form must be sent urlencoded",
                       "Content-Type header", "submit the form from the page")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, "forbidden", "the form was sent from another site", "Origin header",
                       "use the form on this server's own pages")


async def _checked_form(request: Request) -> dict[str, str]:
    """The form of a state-changing request, after its CSRF token and origin are checked."""
    _same_origin(request)
    form = await _form(request)
    if not same_token(form.get("csrf"), _csrf(request)):
        raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong", "form",
                       "reload the page and submit the form again")
    return form


# ------------------------------------------------------------------------------ login
@router.get("")
def home(request: Request) -> Response:
    return redirect(f"{PREFIX}/runs")


@router.get("/login")
def login_page(request: Request) -> Response:
    return _login(request, "", 200)


def _login(request: Request, error: str, status: int) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or ""
    fresh = len(token) < 32 or len(token) > 100
    if fresh:
        import secrets

        token = secrets.token_urlsafe(32)
    response = page("login.html", status, who=None, csrf=token, error=error)
    if fresh:
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                            secure=request.url.scheme == "https")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    _same_origin(request)
    form = await _form(request)
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
        return _login(request, "The login form expired: enter the key again.", 403)
    key = form.get("key", "").strip()
    found = KeyLookup.of(key)
    who = None if found is None else found.principal(
        await commit(state_of(request), found.rows))
    if who is None:
        return _login(request, "Unknown or revoked API key.", 401)
    sessions_of(request).close(request.cookies.get(COOKIE))  # this browser's previous one
    sid, _ = sessions_of(request).open(key)
    response = redirect(f"{PREFIX}/runs")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path=PREFIX,
                        secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, who: Viewer) -> Response:
    await _checked_form(request)
    sessions_of(request).close(request.cookies.get(COOKIE))
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# ------------------------------------------------------------------------------ runs
Statuses = Annotated[list[str] | None, Query(max_length=20)]


def _filters(status: list[str] | None, agent: str | None) -> tuple[list[Any] | None, str | None]:
    chosen = [s for s in status or [] if s in STATUSES]
    return chosen or None, agent or None


@router.get("/runs")
def runs_page(request: Request, who: Viewer, status: Statuses = None,
              agent: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    chosen, agent = _filters(status, agent)
    state = state_of(request)
    listed = runs.list_runs(request, who, status=chosen, agent=agent, limit=200)
    query = urlencode([*(("status", s) for s in chosen or []), *([("agent", agent)]
                                                                  if agent else [])])
    return page("runs.html", **_base(request, who, runs=listed.runs, statuses=STATUSES,
                                     chosen=chosen or [], agent=agent or "",
                                     agents=sorted(state.catalogue), query=query))


@router.get("/runs/rows")
def runs_rows(request: Request, who: Viewer, status: Statuses = None,
              agent: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """The table's body alone: htmx swaps it in every few seconds (live status)."""
    chosen, agent = _filters(status, agent)
    listed = runs.list_runs(request, who, status=chosen, agent=agent, limit=200)
    return page("_rows.html", **_base(request, who, runs=listed.runs))


@router.post("/runs")
async def submit(request: Request, who: Operator) -> Response:
    form = await _checked_form(request)
    text = form.get("input", "").strip()
    try:
        value: Any = json.loads(text) if text else None
    except ValueError:
        value = text  # not JSON: the text itself is the input
    except RecursionError:
        raise ApiError(422, "invalid_request", "input: JSON nested too deeply", "form.input",
                       "send a flatter value") from None
    try:
        body = SubmitIn(agent=form.get("agent", ""), input=value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}",
                       f"form.{where}", "choose an agent from the list and try again"
                       ) from None
    out = await runs.submit_run(body, request, Response(), who, None)
    return redirect(f"{PREFIX}/runs/{out.run.id}")


@router.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, who: Viewer) -> Response:
    detail = runs.get_run(run_id, request, who)  # 404 for another tenant's run
    return page("run.html", **_base(request, who, **_run_view(request, who, detail)))


@router.get("/runs/{run_id}/panels")
def run_panels(run_id: str, request: Request, who: Viewer) -> Response:
    """Status, trace tree, sandbox outputs and decisions, re-read after each streamed event."""
    detail = runs.get_run(run_id, request, who)
    return page("_panels.html", **_base(request, who, **_run_view(request, who, detail)))


def _run_view(request: Request, who: Principal, detail: Any) -> dict[str, Any]:
    state = state_of(request)
    run_id = detail.run.id
    pending = [a for a in approvals.list_approvals(request, who).approvals
               if a.run_id == run_id]
    if not who.may(Role.approver):
        pending = views.approvals_for_viewer(pending)
    sandbox = views.sandbox_outputs(state, run_id)
    if not who.may(Role.operator):  # a viewer reads no more than the model (views.for_viewer)
        detail, sandbox = views.for_viewer(detail, sandbox)
    return {"run": detail.run, "timeline": detail.timeline, "totals": detail.totals,
            "children": detail.children, "trace": views.trace_tree(state, run_id, who.tenant),
            "sandbox": sandbox,
            "decisions": [r for r in detail.timeline if r.decision], "pending": pending}


@router.get("/runs/{run_id}/events")
async def run_events(run_id: str, request: Request, who: Viewer,
                     follow: Annotated[bool, Query()] = True) -> Response:
    """The API's event stream of the run, for the page's EventSource (which resumes with
    Last-Event-ID by itself after a cut)."""
    last = request.headers.get("last-event-id")
    return await stream.event_response(run_id, request, who, last_event_id=last, after=None,
                                       follow=follow, clip=True)


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, request: Request, who: Operator) -> Response:
    await _checked_form(request)
    await run_in_threadpool(runs.cancel_run, run_id, request, who, None)
    return redirect(f"{PREFIX}/runs/{run_id}")


# ------------------------------------------------------------------------------ approvals
@router.get("/approvals")
def approvals_page(request: Request, who: Viewer) -> Response:
    listed = approvals.list_approvals(request, who).approvals
    if not who.may(Role.approver):  # what they would sign is the approvers' to read
        listed = views.approvals_for_viewer(listed)
    done, found = request.query_params.get("done", ""), _session(request)
    return page("approvals.html", **_base(
        request, who, approvals=listed,
        done=done if found is not None and same_token(done, found.done) else ""))


@router.post("/approvals/{approval_id}/{verdict}")
async def decide(approval_id: str, verdict: str, request: Request, who: Approver) -> Response:
    """Approve or deny through the API's handler: the server signs as the key's approver
    (`tether serve --signing-keys`), the run re-checks the signature, the audit log records
    it."""
    form = await _checked_form(request)
    if verdict not in ("approve", "deny"):
        raise ApiError(404, "not_found", f"no decision {verdict!r}", "path",
                       "approve or deny")
    if verdict == "approve":
        _shown_whole(request, who, approval_id)
    handler = approvals.approve if verdict == "approve" else approvals.deny
    body = DecisionIn(reason=form.get("reason", "")[:2000])
    out = await run_in_threadpool(handler, approval_id, body, request, who)
    done = f"{out.verdict} {out.approval_id}: {out.status}"
    found = _session(request)
    if found is not None:
        found.done = done
    return redirect(f"{PREFIX}/approvals?" + urlencode({"done": done}))


def _shown_whole(request: Request, who: Principal, approval_id: str) -> None:
    """The inbox cuts a pending action's arguments at `PAGE_VALUE_MAX` and offers no Approve
    for it then: nobody approves from here what this page could not show them."""
    for a in approvals.list_approvals(request, who).approvals:
        if a.id == approval_id and len(args_json(a.args)) > PAGE_VALUE_MAX:
            raise ApiError(409, "too_long_to_show",
                           f"the arguments of {approval_id} are too long for this page to "
                           "show whole", "path", "read them with GET /v1/approvals and decide "
                           "with `tether approve` or POST /v1/approvals/{id}/approve")


# ------------------------------------------------------------------------------ usage
@router.get("/usage")
def usage_page(request: Request, who: Viewer) -> Response:
    usage = info.usage(request, who, day=None)
    lines = views.budget_lines(state_of(request), who.tenant, usage.counters)
    return page("usage.html", **_base(request, who, usage=usage, budgets=lines,
                                      agents=(usage.kpis or {}).get("agents", [])))
