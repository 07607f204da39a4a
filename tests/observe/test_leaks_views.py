"""What viewers read of a run holds placeholders, not the values the journal keeps: the
timeline's rows when asked redacted, and the web UI's run page for a viewer key. Found by a
leak hunt: a viewer key's run page showed a tool's CRM row (card, IBAN, API key), a token read
from the environment and an error quoting a bearer token, as journaled. An operator still reads
the journal as it is (`tether show`, the UI with an operator key).

A real governed run (leaks_support) served by the real app (real SQLite store, real keys)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.server.ui_support import csrf_of
from tether.observe import timeline_rows
from tether.server.api import ServerConfig
from tether.server.api.app import create_app
from tether.server.keys import ApiKeys

from . import leaks_support as L


async def test_a_redacted_timeline_holds_no_value(db_path: str) -> None:
    t, run = await L.leaky_run(db_path)
    events = t.events(run.id)
    plain = json.dumps([r.to_json() for r in timeline_rows(events)], ensure_ascii=False)
    assert L.ENV_SECRET in plain  # the operator's view: the journal as it is
    rows = timeline_rows(events, redact=True)
    assert L.found(json.dumps([r.to_json() for r in rows], ensure_ascii=False)) == []
    [crm] = [r for r in rows if r.kind == "step_completed" and r.name == "tool:crm_lookup"]
    assert "[CARD_1]" in crm.detail and "[IBAN_1]" in crm.detail
    t.close()


async def test_the_ui_run_page_shows_a_viewer_no_value(db_path: str) -> None:
    t, run = await L.leaky_run(db_path)
    t.close()
    app = create_app(ServerConfig(db=db_path, embedded_worker=False))
    with TestClient(app) as client:
        keys = ApiKeys(app.state.tether.tether.store)
        pages = {}
        for role in ("viewer", "operator"):
            key, _ = keys.create(run.tenant, role)
            client.cookies.clear()
            login = client.post("/ui/login", follow_redirects=False, data={
                "csrf": csrf_of(client.get("/ui/login").text), "key": key})
            assert login.status_code == 303
            pages[role] = (client.get(f"/ui/runs/{run.id}").text
                           + client.get(f"/ui/runs/{run.id}/panels").text)
    assert "crm_lookup" in pages["viewer"] and "[CARD_1]" in pages["viewer"]
    assert L.found(pages["viewer"]) == []
    assert L.CARD in pages["operator"]


async def test_a_viewer_reads_approvals_masked_an_approver_whole(db_path: str) -> None:
    """An approver signs the arguments the tool will receive, so sees the real address; a
    viewer (below the approver role) sees placeholders, on the approvals page and the run's."""
    t = L.leaky_tether(db_path, interceptors=L.APPROVING.interceptors())
    run = await t.run("tests.observe.leaks_support:paying", L.GOAL)
    assert run.status == "waiting"
    t.close()
    app = create_app(ServerConfig(db=db_path, embedded_worker=False))
    with TestClient(app) as client:
        keys = ApiKeys(app.state.tether.tether.store)
        pages = {}
        for role, name in (("viewer", None), ("approver", "alice")):
            key, _ = keys.create(run.tenant, role, name)
            client.cookies.clear()
            client.post("/ui/login", follow_redirects=False, data={
                "csrf": csrf_of(client.get("/ui/login").text), "key": key})
            pages[role] = (client.get("/ui/approvals").text
                           + client.get(f"/ui/runs/{run.id}/panels").text)
    assert "charge(" in pages["viewer"] and "[EMAIL_1]" in pages["viewer"]
    assert L.found(pages["viewer"]) == []
    assert L.EMAIL in pages["approver"]
