"""DELETE /v1/runs/{run_id}: admins delete a finished run tree (retention, erasure); the audit
log keeps who deleted what; a live tree, a child, a lesser role are refused with nothing
deleted. (Another tenant's key: tests/server/test_tenants.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import api_support as S


@pytest.fixture
def api(tmp_path: Path) -> Iterator[S.Api]:
    with S.running(tmp_path) as api:
        yield api


def test_an_admin_deletes_a_finished_run_and_the_audit_log_says_so(api: S.Api) -> None:
    done = api.submit("counter", 2)  # two steps, then waits for `go`
    api.wait(done["id"], "waiting")
    assert api.client.post(f"/v1/runs/{done['id']}/signals", json={"name": "go"},
                           headers=api.as_("operator")).status_code == 202
    api.wait(done["id"], "succeeded")
    kept = api.submit("echo", "stays")
    api.wait(kept["id"], "succeeded")
    operator = api.client.delete(f"/v1/runs/{done['id']}", headers=api.as_("operator"))
    assert operator.status_code == 403 and "admin" in operator.json()["message"]

    r = api.client.delete(f"/v1/runs/{done['id']}", headers=api.as_("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == done["id"] and body["deleted"] == [done["id"]]
    assert body["events"] >= 8  # submitted, started, its steps, the wait, completed

    gone = api.client.get(f"/v1/runs/{done['id']}", headers=api.as_("viewer"))
    assert gone.status_code == 404
    events = api.client.get(f"/v1/runs/{done['id']}/events", params={"follow": "false"},
                            headers=api.as_("viewer"))
    assert events.status_code == 404
    again = api.client.delete(f"/v1/runs/{done['id']}", headers=api.as_("admin"))
    assert again.status_code == 404
    listed = api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"]
    assert [x["id"] for x in listed] == [kept["id"]]
    [entry] = api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"]
    assert (entry["action"], entry["run_id"], entry["actor"].split()[0]) == (
        "delete", done["id"], "ada")
    assert entry["detail"] == {"deleted": [done["id"]], "events": body["events"], "artifacts": 0}


def test_a_run_still_going_is_not_deleted(api: S.Api) -> None:
    waiting = api.submit("waiter")
    api.wait(waiting["id"], "waiting")
    r = api.client.delete(f"/v1/runs/{waiting['id']}", headers=api.as_("admin"))
    assert r.status_code == 409, r.text
    error = r.json()
    assert "have not finished" in error["message"] and "cancel it first" in error["fix"]
    assert api.wait(waiting["id"], "waiting")["run"]["status"] == "waiting"
    assert api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"] == []
