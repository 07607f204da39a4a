"""The REST API while its database cannot take writes (a real full filesystem): a request that
needs a write gets 503 and says why, nothing half-written; once space is freed, the same request
works. Before, it got 500 "internal" and the reason only in the server's log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.small_disk import fill, small_disk
from tests.store.pg_support import raw_sql

from . import api_support as S


@pytest.mark.slow
def test_a_full_disk_is_503_with_the_reason_then_requests_work_again(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk, S.running(disk) as api:
        first = api.submit("echo", "ada")
        api.wait(first["id"], "succeeded")
        listed = len(api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"])
        ballast = fill(disk, leave=0)
        refused = api.client.post("/v1/runs", json={"agent": "echo",
                                                     "input": "bob"}, headers=api.as_("operator"))
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "unavailable" and "disk is full" in body["message"], body
        assert "retry later" in body["fix"], body
        ballast.unlink()
        runs = api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"]
        assert len(runs) == listed  # the refused submission left nothing behind
        again = api.submit("echo", "bob")
        assert api.wait(again["id"], "succeeded")["run"]["result"]


def test_a_run_whose_record_cannot_be_read_is_named_and_the_others_are_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: 500 "internal", "the server failed to handle this request"."""
    with S.running(tmp_path) as api:
        good = api.submit("echo", "ada")
        bad = api.submit("echo", "bob")
        api.wait(bad["id"], "succeeded")
        raw_sql(api.app.state.tether.tether.store, "UPDATE runs SET result=? WHERE id=?",
                (b"{oops", bad["id"]))
        caplog.set_level(logging.ERROR, logger="tether.server")
        r = api.client.get(f"/v1/runs/{bad['id']}", headers=api.as_("viewer"))
        assert r.status_code == 500, r.text
        body = r.json()
        assert body["error"] == "corrupt_record" and bad["id"] in body["message"], body
        assert str(tmp_path) not in r.text  # where the database lives is the operator's
        assert any(f"the result of run {bad['id']}" in m.getMessage()
                   for m in caplog.records), "the server's log names the row"
        assert api.wait(good["id"], "succeeded")["run"]["result"] == "ada"
        listed = api.client.get("/v1/runs", headers=api.as_("viewer"))
        assert listed.status_code == 200, listed.text  # one bad row hides no other run
        runs = {r["id"]: r for r in listed.json()["runs"]}
        assert runs[good["id"]]["status"] == runs[bad["id"]]["status"] == "succeeded"
