"""The web UI in a real browser against a real `tether serve` process on 127.0.0.1: Debian's
chromium (APT_PACKAGES in mk/observe.mk; Playwright's own browser download is not reachable)
driven by Playwright. An approver logs in with an API key, submits a run from the runs page,
watches its timeline stream in on the run page while another tab approves the pending refund,
and sees the run finish without reloading; a second tenant's key sees none of it.

The screenshots of docs/server.md are taken on the way. Regenerate them with

    TETHER_UI_SCREENSHOTS=docs/images .venv/bin/python -m pytest \
        tests/server/test_ui_browser.py -p no:cacheprovider

(without the variable they go to the test's temporary directory).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import api_support as S
from .conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AGENTS = """\
echo: tests.server.api_support:echo
counter: tests.server.api_support:counter
assistant:
  ref: tests.server.api_support:assistant
  guards: tests.server.ui_support:BUDGET_GUARDS
  description: pays, refunds and wipes, under guards
"""
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tether_serve: Callable[..., Any]
           ) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("ui-serve")
    signing = S.write_signing_keys(tmp / "signing-keys")
    with tether_serve(tmp, AGENTS, "--signing-keys", str(signing), ready="/ui/login", keys={
            "alice": ("acme", "approver", "alice"), "vic": ("acme", "viewer", "vic"),
            "gina": ("globex", "admin", "gina")}) as s:
        yield {"base": s.base, "keys": s.keys, "ledger": s.ledger, "tmp": tmp}


def _shots(tmp: Path) -> Path:
    folder = Path(os.environ.get("TETHER_UI_SCREENSHOTS") or tmp / "shots")
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_login_submit_watch_approve_finish_and_another_tenant_sees_nothing(
        served: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, keys = served["base"], served["keys"]
    shots = _shots(served["tmp"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 820})
            # nothing but the server under test: no fonts, no telemetry, no surprises
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"),
                          lambda route: route.abort())
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # log in
            page.goto(base + "/ui")
            expect(page).to_have_url(base + "/ui/login")
            page.fill("input[name=key]", keys["alice"])
            page.screenshot(path=str(shots / "server-login.png"))
            page.click("button[type=submit]")
            expect(page).to_have_url(base + "/ui/runs")
            expect(page.locator("#who")).to_contain_text("alice · approver · tenant acme")
            cookie = next(c for c in context.cookies() if c["name"] == "tether_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert keys["alice"] not in cookie["value"]

            # submit a run; the run page streams its journal
            page.select_option("select[name=agent] >> nth=0", "assistant")
            page.fill("input[name=input]", "refund order A-7")
            page.click("form.submit button")
            expect(page).to_have_url(re.compile(re.escape(base) + r"/ui/runs/r[0-9a-f]+$"))
            run_id = page.url.rsplit("/", 1)[1]
            expect(page.locator("#status")).to_have_text("waiting", timeout=20_000)
            expect(page.locator("#panels .pending")).to_contain_text("refund")
            expect(page.locator("#timeline")).to_contain_text("approve refunds")
            rows_waiting = page.locator("#timeline tr").count()
            assert served["ledger"].exists() is False  # nothing refunded before the approval

            # the approvals inbox, in a second tab: approve
            inbox = context.new_page()
            inbox.goto(base + "/ui/approvals")
            row = inbox.locator("tr.approval", has_text=run_id)
            expect(row).to_contain_text('refund({"order": "A-7"})')
            inbox.screenshot(path=str(shots / "server-approvals.png"))
            row.locator("button.approve").click()
            expect(inbox.locator("p.done")).to_contain_text("approve")
            expect(inbox.locator("p.done")).to_contain_text("approved")

            # the first tab was not reloaded: the events arrive over SSE, the panels follow
            expect(page.locator("#live")).to_have_text("finished", timeout=20_000)
            expect(page.locator("#status")).to_have_text("succeeded")
            expect(page.locator("#result")).to_contain_text("refunded A-7")
            assert page.locator("#timeline tr.new").count() >= 1  # appended live
            assert page.locator("#timeline tr").count() > rows_waiting
            expect(page.locator("#timeline")).to_contain_text("run_completed")
            expect(page.locator("table.trace")).to_contain_text("execute_tool refund")
            expect(page.locator("table.trace")).to_contain_text("chat scripted")
            page.screenshot(path=str(shots / "server-run.png"), full_page=True)
            assert served["ledger"].read_text().splitlines() == ["refund A-7"]

            page.goto(base + "/ui/runs")
            expect(page.locator("tr.run", has_text=run_id)).to_contain_text("succeeded")
            page.screenshot(path=str(shots / "server-runs.png"))
            page.goto(base + "/ui/usage")
            expect(page.locator("table.budgets")).to_contain_text("20000")  # acme's limit
            expect(page.locator("table.budgets meter")).to_have_count(3)
            page.screenshot(path=str(shots / "server-usage.png"))
            assert errors == []

            # another tenant, another browser profile
            other = browser.new_context()
            other.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
            gina = other.new_page()
            gina.goto(base + "/ui/login")
            gina.fill("input[name=key]", keys["gina"])
            gina.click("button[type=submit]")
            expect(gina.locator("#who")).to_contain_text("tenant globex")
            expect(gina.locator("table.runs")).not_to_contain_text(run_id)
            gina.goto(base + "/ui/approvals")
            expect(gina.locator("table.approvals")).to_contain_text("Nothing waits")
            reply = gina.goto(base + f"/ui/runs/{run_id}")
            assert reply is not None and reply.status == 404
            expect(gina.locator("h1")).to_have_text("Not found")
            assert "refund" not in gina.content()
        finally:
            browser.close()


def test_a_viewer_has_no_approve_button_in_the_browser(served: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, keys = served["base"], served["keys"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys['alice']}"},
                      timeout=30) as api:
        run = api.post("/v1/runs", json={"agent": "assistant", "input": "refund B-2"}).json()
        run_id = run["run"]["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/v1/runs/{run_id}").json()["run"]["status"] != "waiting":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
            page.goto(base + "/ui/login")
            page.fill("input[name=key]", keys["vic"])
            page.click("button[type=submit]")
            page.goto(base + "/ui/approvals")
            row = page.locator("tr.approval", has_text=run_id)
            expect(row).to_contain_text("refund")
            expect(row.locator("button")).to_have_count(0)
            # the POST a hand-made form would send is refused by the server too
            csrf = page.locator("input[name=csrf]").first.get_attribute("value")
            approval_id = row.locator("td").first.inner_text()
            answer = page.request.post(base + f"/ui/approvals/{approval_id}/approve",
                                       form={"csrf": csrf or ""})
            assert answer.status == 403 and "approver role" in answer.text()
        finally:
            browser.close()
