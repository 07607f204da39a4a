"""Requests of the wrong shape: a body in another media type, an approval id of another tenant.

Before: a JSON body sent as `text/plain` (or with no Content-Type) was answered "body: Input
should be a valid dictionary or object to extract fields from" — true of the unparsed bytes,
no help to the sender. Another tenant's approval was "no such run here" at `run_id`, a path
parameter the approval route does not have, while a missing approval of one's own tenant was
"no such approval here" at `approval_id`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .api_hostile_support import Live, approval_of, live


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live(tmp_path_factory.mktemp("requests")) as s:
        yield s


@pytest.mark.parametrize(("content_type", "said"), [
    ("text/plain", "'text/plain'"),
    ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
    ("multipart/form-data; boundary=x", "'multipart/form-data'"),
    (None, "no Content-Type"),
])
@pytest.mark.parametrize("path", ["/v1/runs", "/v1/runs/{run}/signals"])
def test_a_json_body_of_another_media_type_is_named_as_such(
        served: Live, content_type: str | None, said: str, path: str) -> None:
    run_id = served.submit("waiter")
    body = b'{"agent": "echo"}' if path == "/v1/runs" else b'{"name": "go"}'
    headers = served.auth("operator")
    if content_type:
        headers["Content-Type"] = content_type
    with served.client() as c:
        before = len(c.get("/v1/runs", headers=served.auth("viewer")).json()["runs"])
        r = c.post(path.format(run=run_id), content=body, headers=headers)
        assert r.status_code == 415, r.text
        err = r.json()
        assert err["where"] == "Content-Type header" and said in err["message"], err
        assert "application/json" in err["fix"]
        assert len(c.get("/v1/runs", headers=served.auth("viewer")).json()["runs"]) == before


def test_a_json_media_type_with_parameters_or_suffix_is_json(served: Live) -> None:
    with served.client() as c:
        for media in ("application/json; charset=utf-8", "application/vnd.api+json"):
            r = c.post("/v1/runs", content=b'{"agent": "echo", "input": 1}',
                       headers={**served.auth("operator"), "Content-Type": media})
            assert r.status_code == 201, (media, r.text)
        r = c.post("/v1/runs", content=b"[1]", headers={**served.auth("operator"),
                                                         "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text


def test_another_tenants_approval_is_missing_in_the_same_words(served: Live) -> None:
    run_id = served.submit("assistant", "refund A-7")
    aid = approval_of(served, run_id)
    with served.client() as c:
        theirs = c.post(f"/v1/approvals/{aid}/approve", json={},
                        headers=served.auth("b-approver"))
        missing = c.post(f"/v1/approvals/{run_id}.a9/approve", json={},
                         headers=served.auth("alice"))
        nowhere = c.post("/v1/approvals/rnothere.a1/approve", json={},
                         headers=served.auth("alice"))
    assert theirs.status_code == missing.status_code == nowhere.status_code == 404
    assert theirs.json() == missing.json() == nowhere.json(), (theirs.text, missing.text)
    assert theirs.json()["where"] == "approval_id"
    served.wait(run_id, "waiting")  # still undecided


@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "9999-99-99", "0000-00-00"])
def test_a_day_that_is_no_date_is_refused(served: Live, day: str) -> None:
    with served.client() as c:
        r = c.get("/v1/usage", params={"day": day}, headers=served.auth("viewer"))
        ok = c.get("/v1/usage", params={"day": "2024-02-29"}, headers=served.auth("viewer"))
    assert r.status_code == 422 and r.json()["where"] == "query.day", r.text
    assert ok.status_code == 200 and ok.json()["day"] == "2024-02-29"
