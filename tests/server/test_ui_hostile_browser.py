"""The web UI in a real browser (Debian's chromium, as test_ui_browser.py) against a hostile
run and a hostile site: an approver watches, live, a run whose every journaled field is HTML,
script and htmx attributes, and nothing of it runs, turns into elements or sends a request;
the page's CSP would stop inline script even if escaping failed; another site can neither
approve through a form or a credentialed fetch, nor frame the inbox.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from . import api_support as S
from .test_ui_browser import CHROMIUM, CHROMIUM_ARGS
from .test_ui_hostile import HERE

AGENTS = f"""\
hostile:
  ref: {HERE}:hostile
  guards: tests.server.api_support:GUARDS
assistant:
  ref: tests.server.api_support:assistant
  guards: tests.server.api_support:GUARDS
"""
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tether_serve: Callable[..., Any]
           ) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("ui-hostile")
    signing = S.write_signing_keys(tmp / "signing-keys")
    with tether_serve(tmp, AGENTS, "--signing-keys", str(signing), ready="/ui/login", keys={
            "alice": ("acme", "approver", "alice")}) as s:
        yield {"base": s.base, "keys": s.keys}


def _waiting_hostile_run(base: str, key: str) -> tuple[str, str]:
    """A hostile run waiting on its hostile refund: (run id, approval id)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as api:
        run_id = api.post("/v1/runs", json={"agent": "hostile", "input": "x"}).json()[
            "run"]["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/v1/runs/{run_id}").json()["run"]["status"] != "waiting":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (approval,) = [a for a in api.get("/v1/approvals").json()["approvals"]
                       if a["run_id"] == run_id]
        return run_id, str(approval["id"])


@contextlib.contextmanager
def attacker(html: str) -> Iterator[str]:
    """Another site serving `html`: http://localhost:PORT/ is not the site of the server
    under test (127.0.0.1), yet both are loopback, so the browser does not refuse the requests
    outright as a public page's requests to a private address — what an attack from a real
    other site gets past."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _decided_by(base: str, key: str, approval_id: str) -> list[str]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as api:
        found = [a for a in api.get("/v1/approvals").json()["approvals"]
                 if a["id"] == approval_id]
        return list(found[0]["decided_by"]) if found else ["(gone)"]


def test_a_hostile_run_stays_text_in_the_browser_and_other_sites_cannot_approve(
        served: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, key = served["base"], served["keys"]["alice"]
    run_id, approval_id = _waiting_hostile_run(base, key)
    with sync_playwright() as pw, attacker(ATTACK.format(base=base, approval=approval_id)
                                           ) as site:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            requests: list[str] = []
            context.on("request", lambda r: requests.append(f"{r.method} {r.url}"))

            context.route(re.compile(r"^(?!http://(127\.0\.0\.1|localhost):).*"),
                          lambda route: route.abort())
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + "/ui/login")
            page.fill("input[name=key]", key)
            page.click("button[type=submit]")
            expect(page).to_have_url(base + "/ui/runs")

            # another site, while the approver is logged in: a form posted to the approve
            # URL, a credentialed fetch, the inbox in a frame
            evil = context.new_page()
            evil.goto(site)
            approve = f"POST {base}/ui/approvals/{approval_id}/approve"
            deadline = time.monotonic() + 10
            while len([r for r in requests if r == approve]) < 2:
                assert time.monotonic() < deadline, requests
                evil.wait_for_timeout(100)
            evil.wait_for_timeout(1000)
            for frame in evil.frames[1:]:  # refused: not even the login page is framed
                assert "Tether" not in frame.content(), frame.url
            assert _decided_by(base, key, approval_id) == []

            # the live run page: the refund is denied meanwhile, the model asks again, and
            # its hostile events arrive over SSE, its new approval in an htmx panel swap
            page.goto(base + f"/ui/runs/{run_id}")
            expect(page.locator("#timeline")).to_contain_text("img data-pwn=1")
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                              timeout=30) as api:
                assert api.post(f"/v1/approvals/{approval_id}/deny",
                                json={"reason": "no"}).status_code == 200
            expect(page.locator("#panels .pending")).to_contain_text(
                approval_id[:-1] + "2", timeout=20_000)
            expect(page.locator("#timeline tr.new", has_text="img data-pwn=1").first
                   ).to_be_visible()
            for path in ("/ui/runs", "/ui/approvals"):
                page.goto(base + path)
                page.wait_for_timeout(3500)  # a live refresh (rows every 2 s, inbox 3 s)
            page.goto(base + f"/ui/runs/{run_id}")
            expect(page.locator("table.trace")).to_contain_text("hx-on::load")
            assert page.evaluate("window.__pwn") is None
            assert page.locator("[data-pwn], main img, main script").count() == 0
            assert not [r for r in requests if "/ui/logout" in r]  # the injected hx-get

            # if escaping ever failed, the CSP would still refuse inline script
            violations = page.evaluate("""() => new Promise(done => {
                const seen = [];
                document.addEventListener('securitypolicyviolation',
                                          e => seen.push(e.violatedDirective));
                const s = document.createElement('script');
                s.textContent = 'window.__pwn = 4';
                document.body.appendChild(s);
                const div = document.createElement('div');
                div.innerHTML = '<img src="data:," onerror="window.__pwn = 5">';
                document.body.appendChild(div);
                setTimeout(() => done(seen), 500);
            })""")
            assert page.evaluate("window.__pwn") is None
            assert any(v.startswith("script-src") for v in violations), violations
            assert errors == []
        finally:
            browser.close()


def test_the_inbox_does_not_move_a_row_under_the_approvers_pointer(
        served: dict[str, Any]) -> None:
    """The inbox re-reads itself every 3 s. When an approval above the one the approver is
    about to approve goes away (decided elsewhere, or its run cancelled — a moment a hostile
    run can choose), the rows below slide up, and the click lands on the next row's Approve:
    an approval nobody meant to give. No refresh may move the table under the pointer."""
    from playwright.sync_api import expect, sync_playwright

    base, key = served["base"], served["keys"]["alice"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as api:
        runs = [api.post("/v1/runs", json={"agent": "assistant", "input": f"refund {i}"}
                         ).json()["run"]["id"] for i in range(3)]
        deadline = time.monotonic() + 20
        while not set(runs) <= {a["run_id"] for a in api.get("/v1/approvals").json()[
                "approvals"]}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        by_run = {a["run_id"]: a["id"] for a in api.get("/v1/approvals").json()["approvals"]}
        first, aimed, below = (by_run[r] for r in runs)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"),
                           lambda route: route.abort())
                page.goto(base + "/ui/login")
                page.fill("input[name=key]", key)
                page.click("button[type=submit]")
                page.goto(base + "/ui/approvals")
                box = page.locator(f'form[action="/ui/approvals/{aimed}/approve"] button'
                                   ).bounding_box()
                assert box is not None
                x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(x, y)  # on its way to click Approve on `aimed`
                assert api.post(f"/v1/runs/{runs[0]}/cancel").status_code == 202
                page.wait_for_timeout(4500)  # more than one refresh
                under = page.evaluate(
                    "([x, y]) => document.elementFromPoint(x, y).closest('form').action",
                    [x, y])
                assert under.endswith(f"/ui/approvals/{aimed}/approve"), (under, below)
                page.mouse.move(5, 5)  # off the table: the refreshes go on
                expect(page.locator(f'tr[id="{first}"]')).to_have_count(0, timeout=10_000)
                expect(page.locator(f'tr[id="{below}"]')).to_have_count(1)
            finally:
                browser.close()


#: the attacker's page: an auto-submitting form and a credentialed no-cors fetch to the
#: approve URL, and the inbox (to be clicked through) and a static file in frames
ATTACK = """<!doctype html><html><body>
<iframe id="inbox" src="{base}/ui/approvals" width="900" height="400"></iframe>
<iframe id="static" src="{base}/ui/static/ui.css" width="900" height="100"></iframe>
<iframe name="sink" width="10" height="10"></iframe>
<form id="f" method="post" action="{base}/ui/approvals/{approval}/approve" target="sink">
<input name="csrf" value="guessed"><input name="reason" value="forged"></form>
<script>
fetch("{base}/ui/approvals/{approval}/approve", {{method: "POST", mode: "no-cors",
  credentials: "include", body: new URLSearchParams({{reason: "forged"}})}});
document.getElementById("f").submit();
</script></body></html>"""
