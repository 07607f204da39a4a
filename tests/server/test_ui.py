"""The web UI on the real app (real SQLite store, embedded worker): login by API key into an
HttpOnly SameSite=Strict session, the pages, approvals through the API's signing path, and
hostile use — forged or missing CSRF tokens, foreign origins, forged and revoked sessions, a
viewer posting an approval, another tenant reaching for runs and approvals, HTML in a run's
input, a cookie aimed at the REST API."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.runtime import Tether
from tether.server.keys import ApiKeys

from . import api_support as S
from .test_api_stream import parse_sse
from .ui_support import UiUser, csrf_of, user

STATIC = Path(__file__).resolve().parents[2] / "tether" / "server" / "ui" / "static"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S.Api]:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    with S.running(tmp_path) as api:
        yield api


def pending(api: S.Api, run_id: str) -> list[dict[str, Any]]:
    reply = api.client.get("/v1/approvals", headers=api.as_("viewer"))
    return [a for a in reply.json()["approvals"] if a["run_id"] == run_id]


def ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_login_sets_an_httponly_strict_session_and_pages_need_it(api: S.Api) -> None:
    anon = UiUser.of(api.app)
    for path in ("/ui", "/ui/runs", "/ui/approvals", "/ui/usage", "/ui/runs/r1"):
        reply = anon.get(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"] in ("/ui/login", "/ui/runs"), path
    reply = anon.login(api.keys["viewer"])
    cookie = next(c for c in reply.headers.get_list("set-cookie")
                  if c.startswith("tether_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert api.keys["viewer"] not in cookie  # the cookie is opaque: the key stays on the server
    page = anon.get("/ui/runs")
    assert page.status_code == 200 and "vic · viewer · tenant <b>acme</b>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_bad_keys_and_forged_login_forms_are_refused(api: S.Api) -> None:
    anon = UiUser.of(api.app)
    wrong = anon.login("tk_000000000000_" + "x" * 43)
    assert wrong.status_code == 401 and "Unknown or revoked API key" in wrong.text
    assert "tether_session" not in wrong.headers.get("set-cookie", "")
    # a login form posted without the login page's token (login CSRF)
    forged = anon.client.post("/ui/login", data={"key": api.keys["viewer"], "csrf": "x" * 43},
                              follow_redirects=False)
    assert forged.status_code == 403 and "tether_session" not in forged.headers.get(
        "set-cookie", "")
    assert anon.get("/ui/runs").status_code == 303


def test_a_forged_or_revoked_session_sends_back_to_login(api: S.Api, tmp_path: Path) -> None:
    forged = UiUser.of(api.app)
    forged.client.cookies.set("tether_session", "guessed-session-id", path="/ui")
    assert forged.get("/ui/runs").headers["location"] == "/ui/login"
    u = user(api, "operator")
    assert u.get("/ui/runs").status_code == 200
    t = Tether(tmp_path / "tether.db")
    try:
        keys = ApiKeys(t.store)
        (olga,) = [p for p in keys.list("acme") if p.name == "olga"]
        assert keys.revoke(olga.key_id)
    finally:
        t.close()
    assert u.get("/ui/runs").headers["location"] == "/ui/login"


def test_the_session_cookie_does_not_authorize_the_rest_api(api: S.Api) -> None:
    u = user(api, "admin")
    cookie = u.client.cookies.get("tether_session")
    assert cookie
    reply = u.client.get("/v1/runs", headers={"Cookie": f"tether_session={cookie}"})
    assert reply.status_code == 401


def test_submit_watch_and_approve_from_the_ui(api: S.Api, tmp_path: Path) -> None:
    alice = user(api, "alice")
    run_id = alice.submit("assistant", "refund order A-7")
    api.wait(run_id, "waiting")
    page = alice.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200
    assert "approve refunds" in page.text  # the guards' decision, in the trace and the list
    assert "invoke_agent assistant" in page.text and "chat scripted" in page.text
    (approval,) = pending(api, run_id)
    inbox = alice.get("/ui/approvals")
    assert f'action="/ui/approvals/{approval["id"]}/approve"' in inbox.text
    assert ledger(tmp_path) == []
    done = alice.post(f"/ui/approvals/{approval['id']}/approve", {"reason": "looks right"})
    assert done.status_code == 303 and "approved" in done.headers["location"]
    body = api.wait(run_id, "succeeded")
    assert body["run"]["result"]["answer"] == "done: refunded A-7"
    assert ledger(tmp_path) == ["refund A-7"]
    audit = api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"]
    assert [(e["actor"].split()[0], e["action"], e["run_id"]) for e in audit] == [
        ("alice", "approve", run_id)]
    final = alice.get(f"/ui/runs/{run_id}").text
    assert "succeeded" in final and "refunded A-7" in final
    tokens = re.search(r"tokens (\d+)/(\d+)", final)
    assert tokens is not None and int(tokens.group(1)) > 0


def test_two_person_approval_needs_two_approvers_in_the_ui(api: S.Api) -> None:
    alice, bob = user(api, "alice"), user(api, "bob")
    run_id = alice.submit("assistant", "transfer 250")
    api.wait(run_id, "waiting")
    (approval,) = pending(api, run_id)
    first = alice.post(f"/ui/approvals/{approval['id']}/approve")
    assert first.status_code == 303 and "pending" in first.headers["location"]
    again = alice.post(f"/ui/approvals/{approval['id']}/approve")
    assert again.status_code == 409 and "Traceback" not in again.text
    assert pending(api, run_id)[0]["decided_by"] == ["alice"]
    assert bob.post(f"/ui/approvals/{approval['id']}/approve").status_code == 303
    assert api.wait(run_id, "succeeded")["run"]["result"]["answer"] == "done: sent 250.0 to acct-9"


def test_forms_without_the_session_csrf_token_or_from_another_origin_are_refused(
        api: S.Api) -> None:
    alice = user(api, "alice")
    for token in ("", "x" * 43):
        reply = alice.post("/ui/runs", {"agent": "echo", "input": "1"}, csrf=token)
        assert reply.status_code == 403 and "CSRF" in reply.text
    foreign = alice.post("/ui/runs", {"agent": "echo", "input": "1"},
                         headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    # another session's token does not work either
    other = user(api, "bob")
    assert alice.post("/ui/runs", {"agent": "echo"}, csrf=other.csrf).status_code == 403
    listed = api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"]
    assert listed == []  # none of them made a run
    run_id = api.submit("assistant", "refund A-7")
    api.wait(run_id["id"], "waiting")
    (approval,) = pending(api, run_id["id"])
    assert alice.post(f"/ui/approvals/{approval['id']}/approve", csrf="").status_code == 403
    assert alice.post(f"/ui/runs/{run_id['id']}/cancel", csrf="").status_code == 403
    assert pending(api, run_id["id"])[0]["decided_by"] == []
    json_body = alice.client.post(f"/ui/approvals/{approval['id']}/approve",
                                  json={"csrf": alice.csrf}, follow_redirects=False)
    assert json_body.status_code == 415
    assert alice.post("/ui/logout", csrf="").status_code == 403
    assert alice.get("/ui/runs").status_code == 200  # still logged in


def test_a_viewer_sees_no_buttons_and_its_posts_are_refused(api: S.Api) -> None:
    vic = user(api, "viewer")
    run = api.submit("assistant", "refund A-7")
    api.wait(run["id"], "waiting")
    (approval,) = pending(api, run["id"])
    runs = vic.get("/ui/runs").text
    assert run["id"] in runs and 'method="post" action="/ui/runs"' not in runs  # no submit form
    inbox = vic.get("/ui/approvals").text
    assert approval["id"] in inbox and "/approve" not in inbox and "/deny" not in inbox
    assert "Cancel run" not in vic.get(f"/ui/runs/{run['id']}").text
    refused = vic.post(f"/ui/approvals/{approval['id']}/approve")
    assert refused.status_code == 403 and "approver role" in refused.text
    assert vic.post("/ui/runs", {"agent": "echo"}).status_code == 403
    assert vic.post(f"/ui/runs/{run['id']}/cancel").status_code == 403
    assert pending(api, run["id"])[0]["decided_by"] == []
    assert len(api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"]) == 1
    operator = user(api, "operator")  # an operator submits and cancels, but does not approve
    assert 'method="post" action="/ui/runs"' in operator.get("/ui/runs").text
    assert "/approve" not in operator.get("/ui/approvals").text
    assert operator.post(f"/ui/approvals/{approval['id']}/approve").status_code == 403


def test_another_tenant_sees_none_of_it(api: S.Api, tmp_path: Path) -> None:
    alice = user(api, "alice")
    run_id = alice.submit("assistant", "refund A-7")
    api.wait(run_id, "waiting")
    (approval,) = pending(api, run_id)
    carol = user(api, "b-approver")  # globex's approver
    gina = user(api, "b-operator")
    assert run_id not in carol.get("/ui/runs").text
    assert approval["id"] not in carol.get("/ui/approvals").text
    for path in (f"/ui/runs/{run_id}", f"/ui/runs/{run_id}/panels",
                 f"/ui/runs/{run_id}/events"):
        reply = carol.get(path)
        assert reply.status_code == 404 and run_id not in reply.text, path
    assert carol.post(f"/ui/approvals/{approval['id']}/approve").status_code == 404
    assert gina.post(f"/ui/runs/{run_id}/cancel").status_code == 404
    assert pending(api, run_id)[0]["decided_by"] == []
    assert api.client.get(f"/v1/runs/{run_id}", headers=api.as_("viewer")).json()["run"][
        "status"] == "waiting"
    usage = carol.get("/ui/usage").text
    assert "tenant globex" in usage and "No runs." in usage
    assert ledger(tmp_path) == []


def test_the_run_page_streams_the_api_events_through_the_session(api: S.Api) -> None:
    vic = user(api, "viewer")
    run = api.submit("counter", 2, label="operator")
    api.wait(run["id"], "waiting")
    with vic.client.stream("GET", f"/ui/runs/{run['id']}/events",
                           params={"follow": "false"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        text = "".join(reply.iter_text())
    frames = parse_sse(text)
    kinds = [f["data"]["kind"] for f in frames if f["event"] == "event"]
    assert kinds[0] == "run_submitted" and "signal_waiting" in kinds
    # resumed after an id, as the browser's EventSource does after a cut
    r = api.client.post(f"/v1/runs/{run['id']}/signals", json={"name": "go"},
                        headers=api.as_("operator"))
    assert r.status_code == 202
    last = max(int(f["id"]) for f in frames if f["event"] == "event")
    with vic.client.stream("GET", f"/ui/runs/{run['id']}/events",
                           headers={"Last-Event-ID": str(last)}) as reply:
        rest = parse_sse("".join(reply.iter_text()))
    assert all(int(f["id"]) > last for f in rest if f["event"] == "event")
    assert rest[-1]["event"] == "end" and rest[-1]["data"]["status"] == "succeeded"


def test_filters_and_the_live_rows_fragment(api: S.Api) -> None:
    done = api.submit("echo", 1)
    waiting = api.submit("waiter")
    api.wait(done["id"], "succeeded")
    api.wait(waiting["id"], "waiting")
    vic = user(api, "viewer")
    page = vic.get("/ui/runs", params={"status": "waiting"}).text
    assert waiting["id"] in page and done["id"] not in page
    assert 'hx-get="/ui/runs/rows?status=waiting"' in page  # the live refresh keeps the filter
    rows = vic.get("/ui/runs/rows", params={"agent": "echo"}).text
    assert done["id"] in rows and waiting["id"] not in rows and "<html" not in rows
    ignored = vic.get("/ui/runs", params={"status": "bogus"})
    assert ignored.status_code == 200 and done["id"] in ignored.text


def test_html_in_a_run_is_escaped_and_errors_show_no_internals(api: S.Api) -> None:
    op = user(api, "operator")
    run_id = op.submit("echo", '"<script>alert(1)</script>"')
    api.wait(run_id, "succeeded")
    page = op.get(f"/ui/runs/{run_id}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as inert text
    assert "<script>alert(1)</script>" not in op.get("/ui/runs").text
    missing = op.get("/ui/runs/r" + "0" * 15)
    assert missing.status_code == 404 and "Not found" in missing.text
    unknown_agent = op.post("/ui/runs", {"agent": "no-such-agent"})
    assert unknown_agent.status_code == 404 and "no-such-agent" in unknown_agent.text
    bad_verdict = op.post("/ui/approvals/x.a1/maybe")
    assert bad_verdict.status_code in (403, 404)
    for reply in (missing, unknown_agent, bad_verdict):
        assert "Traceback" not in reply.text and 'File "' not in reply.text


def test_the_ui_is_not_in_the_openapi_description(api: S.Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/ui")]


def test_the_vendored_htmx_is_the_pinned_build() -> None:
    readme = (STATIC / "README.md").read_text()
    pinned = re.search(r"htmx-(\d+\.\d+\.\d+)\.min\.js.*?sha256 ([0-9a-f]{64})", readme, re.S)
    assert pinned is not None
    served = (STATIC / f"htmx-{pinned.group(1)}.min.js").read_bytes()
    assert hashlib.sha256(served).hexdigest() == pinned.group(2)
    base = (STATIC.parent / "templates" / "base.html").read_text()
    assert f"/ui/static/htmx-{pinned.group(1)}.min.js" in base


def test_the_login_page_has_a_fresh_form_token(api: S.Api) -> None:
    anon = UiUser.of(api.app)
    first = csrf_of(anon.get("/ui/login").text)
    assert len(first) >= 32 and first == csrf_of(anon.get("/ui/login").text)
    assert csrf_of(UiUser.of(api.app).get("/ui/login").text) != first


def test_usage_shows_the_day_against_the_tenants_budgets(tmp_path: Path) -> None:
    with S.running(tmp_path, guards="tests.server.ui_support:BUDGET_GUARDS") as api:
        run = api.submit("assistant", "lookup acct-1")
        api.wait(run["id"], "succeeded")
        used = api.client.get("/v1/usage", headers=api.as_("viewer")).json()["counters"]
        assert used["tokens_in"] > 0
        page = user(api, "viewer").get("/ui/usage").text
        row = re.search(r"<td>tokens_in</td><td>(\d+)</td>\s*<td>(\d+)</td>", page)
        assert row is not None and int(row.group(1)) == used["tokens_in"]
        assert row.group(2) == "20000"
        assert f'value="{used["tokens_in"] / 20000}"' in page
        assert "<td>cost_usd</td>" in page and "unlimited" in page  # no cost limit set
        other = user(api, "b-viewer").get("/ui/usage").text
        assert "20000" not in other  # globex has no limits, and none of acme's usage


def test_an_unexpected_failure_is_a_page_without_internals(api: S.Api,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    from fastapi import APIRouter

    from tether.server.ui.render import HtmlRoute

    broken = APIRouter(route_class=HtmlRoute)

    @broken.get("/ui/broken")
    def fails() -> None:
        raise RuntimeError("secret internal detail")

    api.app.include_router(broken)
    reply = user(api, "viewer").get("/ui/broken")
    assert reply.status_code == 500 and "Server error" in reply.text
    assert "secret internal detail" not in reply.text and "Traceback" not in reply.text
    assert "secret internal detail" in caplog.text  # the operator's log has it


def test_the_servers_root_leads_a_browser_to_the_ui(api: S.Api) -> None:
    """Before: opening http://127.0.0.1:8000/ answered a JSON 404."""
    reply = UiUser.of(api.app).get("/")
    assert reply.status_code == 307 and reply.headers["location"] == "/ui"
    assert "/" not in api.client.get("/openapi.json").json()["paths"]
