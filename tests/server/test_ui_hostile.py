"""The web UI against a hostile model and hostile tools: everything a run journals (its input,
result and error, step names, log lines, tool names and arguments, approval requests, child
runs) is written to be HTML, JavaScript, htmx attributes or a `</script>` breakout, and the
pages must show it as inert text to the admin who reads them. Also the headers every response
under /ui carries (static files and errors included), and what a cross-site or cross-tenant
request can reach."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether import Context
from tether.agents import react
from tether.models import ScriptedModel, tool_call
from tether.models.scripted import ScriptedCall

from . import api_support as S
from .ui_support import UiUser, user

#: every context at once: element text, a quoted or unquoted attribute, a script block, an
#: htmx attribute, a javascript: URL, JS line terminators
PAYLOAD = ("</script><script>window.__pwn=1</script>\"><img data-pwn=1 src=x "
           "onerror=\"window.__pwn=2\">' hx-get=/ui/runs hx-on::load=\"window.__pwn=3\" "
           "<b data-pwn=2 hx-trigger=load hx-get=/ui/logout>x</b> javascript:alert(1) "
           "\u2028\u2029 {{7*7}}")
HERE = "tests.server.test_ui_hostile"


def _script(call: ScriptedCall) -> Any:
    """A model that names a tool that does not exist, then asks for a refund of a hostile
    order (an approval waits), and asks again after a denial, all carrying the payload."""
    seen = [m for m in call.messages if m.role == "tool"]
    if not seen:
        return tool_call(PAYLOAD, {PAYLOAD: PAYLOAD})
    if len(seen) == 1:
        return tool_call("refund", {"order": PAYLOAD})
    return f"done {PAYLOAD}"


MODEL = ScriptedModel(fn=_script)
#: an order for a refund that is mostly padding: what the approver must see to the end
BULKY_ORDER = "A-7" + " " * 50_000 + "B-9 and everything else"
BULKY = ScriptedModel(fn=lambda call: "done" if any(m.role == "tool" for m in call.messages)
                      else tool_call("refund", {"order": BULKY_ORDER}))


def _same(value: Any) -> Any:
    return value


async def hostile(ctx: Context, _: Any = None) -> Any:
    """Writes the payload into every part of its journal, then waits on a hostile approval."""
    ctx.log(PAYLOAD, note=PAYLOAD)
    await ctx.step(PAYLOAD, _same, PAYLOAD)
    await ctx.spawn(f"{HERE}:fails", PAYLOAD)
    return await react(ctx, PAYLOAD, model=MODEL, tools=S.TOOLS, max_steps=4)


#: a tool name a model made up, long enough to be most of a page
LONG_NAME = "t" * 300_000
LONG = ScriptedModel(fn=lambda call: "done" if len(call.messages) > 3
                     else tool_call(LONG_NAME, {}))


async def long_names(ctx: Context, _: Any = None) -> Any:
    return await react(ctx, "go", model=LONG, tools=S.TOOLS, max_steps=3)


async def bulky(ctx: Context, _: Any = None) -> Any:
    return await react(ctx, "refund", model=BULKY, tools=S.TOOLS, max_steps=2)


async def chatty(ctx: Context, _: Any = None) -> Any:
    """One log line of 3 MB (a tool's output a strategy logs, say)."""
    ctx.log("z" * 3_000_000)
    return 1


async def fails(ctx: Context, inp: Any = None) -> Any:
    raise RuntimeError(PAYLOAD)


async def says(ctx: Context, inp: Any = None) -> Any:
    return {PAYLOAD: [PAYLOAD, inp]}


def config(db: Path, signing: Path) -> Any:
    from tether.server.api import AgentEntry, ServerConfig

    return ServerConfig(
        db=db, signing_keys=signing, embedded_worker=True, sse_poll=0.05,
        agents={PAYLOAD[:40]: f"{HERE}:says", "says": f"{HERE}:says",
                "fails": f"{HERE}:fails", "elsewhere": f"{HERE}:spawns_elsewhere",
                "chatty": f"{HERE}:chatty",
                "long": AgentEntry("long", f"{HERE}:long_names",
                                   guards="tests.server.api_support:GUARDS"),
                "bulky": AgentEntry("bulky", f"{HERE}:bulky",
                                    guards="tests.server.api_support:GUARDS"),
                "hostile": AgentEntry("hostile", f"{HERE}:hostile",
                                      guards="tests.server.api_support:GUARDS",
                                      description=PAYLOAD)})


@contextlib.contextmanager
def running(tmp: Path) -> Iterator[S.Api]:
    from fastapi.testclient import TestClient

    from tether.server.api import create_app

    db = tmp / "tether.db"
    keys = S.make_keys(db)
    app = create_app(config(db, S.write_signing_keys(tmp / "signing-keys")))
    with TestClient(app) as client:
        api = S.Api(client, keys)
        api.app = app
        yield api


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S.Api]:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    with running(tmp_path) as api:
        yield api


async def spawns_elsewhere(ctx: Context, _: Any = None) -> Any:
    """Spawns a child in tenant globex (spawn's `tenant=`) that journals a secret."""
    child = await ctx.spawn(f"{HERE}:keeps_secret", None, tenant="globex")
    return await child


async def keeps_secret(ctx: Context, _: Any = None) -> Any:
    await ctx.step("globex-secret-step", _same, "globex-secret-value")
    return "ok"


def _hostile_runs(api: S.Api) -> dict[str, str]:
    """One run of each hostile kind, settled: waiting on a hostile approval, failed with a
    hostile error, succeeded with a hostile result (all with a hostile input)."""
    ids = {"hostile": api.submit("hostile", PAYLOAD)["id"],
           "fails": api.submit("fails", PAYLOAD)["id"], "says": api.submit("says", PAYLOAD)["id"]}
    api.wait(ids["hostile"], "waiting")
    api.wait(ids["fails"], "failed")
    api.wait(ids["says"], "succeeded")
    return ids


def test_every_field_a_hostile_run_journals_is_inert_text_on_every_page(api: S.Api) -> None:
    ids = _hostile_runs(api)
    ada = user(api, "admin")
    pages = ["/ui/runs", "/ui/runs/rows", "/ui/approvals", "/ui/usage",
             *(f"/ui/runs/{i}" for i in ids.values()),
             *(f"/ui/runs/{i}/panels" for i in ids.values())]
    for path in pages:
        reply = ada.get(path)
        assert reply.status_code == 200, path
        html = reply.text
        for raw in ("<img", "<script>window", "<b data-pwn", "onerror=\"", "hx-on::load=\""):
            assert raw not in html, (path, raw)
    run_page = ada.get(f"/ui/runs/{ids['hostile']}").text
    # shown, as text: the step name, the unknown tool the model named, the approval's args
    assert run_page.count("&lt;img data-pwn=1") >= 3
    inbox = ada.get("/ui/approvals").text
    assert "refund(" in inbox and "img data-pwn=1" in inbox


def test_every_response_under_ui_forbids_sniffing_and_framing(api: S.Api) -> None:
    """Not only the rendered pages: the static files, the event stream, and the errors the
    router itself answers (no such page, wrong method) — a browser may frame or sniff any of
    them."""
    run = api.submit("says", PAYLOAD)
    api.wait(run["id"], "succeeded")
    vic = user(api, "viewer")
    replies = {path: vic.get(path) for path in (
        "/ui/static/run.js", "/ui/static/ui.css", "/ui/static/htmx-2.0.4.min.js",
        "/ui/static/README.md", "/ui/static/missing.js", "/ui/no-such-page", "/ui/logout",
        f"/ui/runs/{run['id']}/events?follow=false", "/ui/runs")}
    assert replies["/ui/static/run.js"].status_code == 200
    assert replies["/ui/logout"].status_code == 405  # a GET of a form's target
    assert replies["/ui/no-such-page"].status_code == 404
    for path, reply in replies.items():
        assert reply.headers.get("x-content-type-options") == "nosniff", path
        assert reply.headers.get("x-frame-options") == "DENY", path
        assert "frame-ancestors 'none'" in reply.headers.get("content-security-policy", ""), path
    assert "script-src 'self'" in replies["/ui/runs"].headers["content-security-policy"]


def test_cookies_are_secure_over_https(api: S.Api) -> None:
    from fastapi.testclient import TestClient

    browser = UiUser(TestClient(api.app, base_url="https://testserver"))
    login = browser.client.get("/ui/login")
    assert "Secure" in login.headers["set-cookie"]
    reply = browser.login(api.keys["viewer"])
    cookie = next(c for c in reply.headers.get_list("set-cookie")
                  if c.startswith("tether_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_the_trace_tree_shows_no_span_of_another_tenants_child_run(api: S.Api) -> None:
    """A run may spawn its child into another tenant (`spawn(tenant=)`); the API then leaves
    the child out of the parent's `children` for the parent's tenant, and so must the trace
    tree, which read the whole tree of runs from the store."""
    run = api.submit("elsewhere")
    api.wait(run["id"], "succeeded")
    detail = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("viewer")).json()
    assert detail["children"] == []  # the API: not acme's
    vic = user(api, "viewer")
    for path in (f"/ui/runs/{run['id']}", f"/ui/runs/{run['id']}/panels"):
        html = vic.get(path).text
        assert "invoke_agent spawns_elsewhere" in html, path
        assert "globex-secret" not in html and "invoke_agent keeps_secret" not in html, path
    (child,) = [r for r in api.client.get("/v1/runs", headers=api.as_("b-viewer")).json()[
        "runs"] if r["parent_id"] == run["id"]]
    assert "globex-secret-step" in user(api, "b-viewer").get(f"/ui/runs/{child['id']}").text


def test_the_approvals_inbox_shows_only_the_outcome_of_this_sessions_own_decision(
        api: S.Api) -> None:
    """The inbox said whatever `?done=` said, in its success box: a link could tell an
    approver that an action was denied when it waits, or to paste the key elsewhere."""
    ids = _hostile_runs(api)
    (approval,) = [a for a in api.client.get("/v1/approvals", headers=api.as_("viewer")).json()[
        "approvals"] if a["run_id"] == ids["hostile"]]
    alice = user(api, "alice")
    forged = f"deny {approval['id']}: denied. Session expired: paste your key at evil.example"
    page = alice.get("/ui/approvals", params={"done": forged}).text
    assert "evil.example" not in page and 'class="done"' not in page
    decided = alice.post(f"/ui/approvals/{approval['id']}/deny", {"reason": "no"})
    assert decided.status_code == 303
    genuine = alice.get(decided.headers["location"]).text
    assert f"deny {approval['id']}: denied" in genuine and 'class="done"' in genuine
    # the genuine message is this session's: another approver's browser does not show it
    assert 'class="done"' not in user(api, "bob").get(decided.headers["location"]).text


def test_an_approval_too_long_to_show_whole_cannot_be_approved_from_the_inbox(
        api: S.Api) -> None:
    """The inbox showed a pending action's arguments whole, re-read every 3 s: a model could
    make the page as large as it liked. Cut like a run's values — and then the approver has
    not seen what a click would approve, so only Deny is offered for it."""
    run = api.submit("bulky")
    api.wait(run["id"], "waiting")
    (approval,) = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()[
        "approvals"]
    assert approval["args"] == {"order": BULKY_ORDER}
    inbox = user(api, "alice").get("/ui/approvals").text
    assert len(inbox) < 20_000 and "B-9 and everything else" not in inbox
    assert "more characters" in inbox and "GET /v1/approvals" in inbox
    assert f"/ui/approvals/{approval['id']}/deny" in inbox
    assert f"/ui/approvals/{approval['id']}/approve" not in inbox
    # nor does a hand-made form approve it
    alice = user(api, "alice")
    refused = alice.post(f"/ui/approvals/{approval['id']}/approve")
    assert refused.status_code == 409 and "too long" in refused.text
    pending = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()["approvals"]
    assert pending[0]["decided_by"] == []
    assert alice.post(f"/ui/approvals/{approval['id']}/deny").status_code == 303


def test_a_run_page_cuts_what_a_model_names_however_long(api: S.Api) -> None:
    """A tool name the model made up is shown in the trace (the span's name and its error)
    whole, and the panels are re-read after every burst of a live run's events: a model could
    make the run page as large as it liked, and the run unreadable to its admin. Cut like the
    run's values."""
    run = api.submit("long")
    api.wait(run["id"], "succeeded")
    vic = user(api, "viewer")
    for path in (f"/ui/runs/{run['id']}", f"/ui/runs/{run['id']}/panels"):
        html = vic.get(path).text
        assert "t" * 5_000 in html and len(html) < 150_000, (path, len(html))
        assert "more characters" in html


def test_one_key_logging_in_again_and_again_does_not_log_everyone_else_out() -> None:
    """Sessions are capped (the oldest goes first), and any key of any tenant may log in as
    often as it likes: a viewer of another tenant looping over the login form pushed every
    admin's session out. One key now only ever replaces its own oldest sessions."""
    from tether.server.ui import Sessions

    sessions = Sessions(limit=50)
    admin, _ = sessions.open("tk_admin_of_acme")
    for _ in range(200):
        sessions.open("tk_viewer_of_globex")
    assert sessions.get(admin) is not None
    newest, _ = sessions.open("tk_viewer_of_globex")
    assert sessions.get(newest) is not None  # the looping key still logs in


def test_a_bad_submit_form_is_a_clear_422_not_a_server_error(
        api: S.Api, caplog: pytest.LogCaptureFixture) -> None:
    """The run form's fields went into the API's model unchecked: an empty or overlong agent
    name or an input nested deeper than the JSON parser recurses answered 500 ("the server
    failed") and logged a traceback for the operator, for a typing mistake."""
    olga = user(api, "operator")
    for form, says in (({"agent": ""}, "agent"), ({"agent": "x" * 300}, "agent"),
                       ({"agent": "echo", "input": "[" * 5000 + "]" * 5000}, "input")):
        reply = olga.post("/ui/runs", form)
        assert reply.status_code == 422, (form["agent"][:10], reply.status_code)
        assert says in reply.text and "server failed" not in reply.text
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text


def test_the_run_pages_event_stream_cuts_a_rows_detail_as_the_run_does(api: S.Api) -> None:
    """The run page's EventSource got a 3 MB log line whole (3 MB per event, put whole into
    the timeline by run.js), where GET /v1/runs/{id} and the page itself show 20 KB of it. The
    API's own stream stays whole: it is where the run's detail view says the whole value is."""
    from .test_api_stream import parse_sse

    run = api.submit("chatty")
    detail = api.wait(run["id"], "succeeded")
    cut = max(len(t["detail"]) for t in detail["timeline"])
    assert cut < 50_000 and any("GET /v1/runs/{run_id}/events" in t["detail"]
                                for t in detail["timeline"])
    browser = user(api, "viewer")
    page = browser.get(f"/ui/runs/{run['id']}/events", params={"follow": "false"})
    frames = parse_sse(page.text)
    shown = max(len(f["data"].get("detail") or "") for f in frames if f["event"] == "event")
    assert shown <= cut
    with api.client.stream("GET", f"/v1/runs/{run['id']}/events", params={"follow": "false"},
                           headers=api.as_("viewer")) as reply:
        frames = parse_sse("".join(reply.iter_text()))
    whole = max(len(f["data"].get("detail") or "") for f in frames if f["event"] == "event")
    assert whole >= 3_000_000


def test_logging_in_again_ends_the_browsers_previous_session(api: S.Api) -> None:
    """A second login in the same browser (another key, or the same) replaced the cookie but
    left the previous session open on the server for its 8 hours: whoever had copied that
    cookie kept its key's powers."""
    browser = user(api, "admin")
    before = browser.client.cookies.get("tether_session")
    assert before and browser.login(api.keys["viewer"]).status_code == 303
    assert browser.client.cookies.get("tether_session") != before
    thief = UiUser.of(api.app)
    thief.client.cookies.set("tether_session", before, path="/ui")
    assert thief.get("/ui/runs").headers.get("location") == "/ui/login"
    assert "vic · viewer" in browser.get("/ui/runs").text
