"""Tenant isolation, endpoint by endpoint: tenant B's keys (up to admin) never read, signal,
cancel, resolve, delete or decide tenant A's runs — a run id or approval id of A answers 404 exactly
like one that does not exist — and B's lists never contain A's data. The test enumerates the
app's routes, so an endpoint added without a case here fails it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tether.guards.approvals import sign_decision

from . import api_support as S


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S.Api, dict[str, Any]]]:
    """Tenant A with a waiting run, a pending approval, a finished run and an audit entry."""
    tmp = tmp_path_factory.mktemp("tenants")
    with S.running(tmp) as api:
        waiting = api.submit("waiter")
        api.wait(waiting["id"], "waiting")
        done = api.submit("echo", {"secret": "A-only"})
        api.wait(done["id"], "succeeded")
        paying = api.submit("assistant", "transfer 250")
        api.wait(paying["id"], "waiting")
        [p] = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()["approvals"]
        doomed = api.submit("waiter")
        api.wait(doomed["id"], "waiting")
        assert api.client.post(f"/v1/runs/{doomed['id']}/cancel",
                               headers=api.as_("operator")).status_code == 202
        yield api, {"waiting": waiting["id"], "done": done["id"], "approval": p["id"],
                    "digest": p["action_digest"], "paying": paying["id"]}


def _by_route(api: S.Api, ids: dict[str, Any], label: str) -> dict[tuple[str, str], Any]:
    """One request per (method, path) of the API, as tenant B (`label`) aimed at tenant A."""
    c, h = api.client, api.as_(label)
    run, aid = ids["waiting"], ids["approval"]
    signed = sign_decision(S.private_key("carol"), aid, "approve", "carol", ids["digest"])
    return {
        ("POST", "/v1/runs"): lambda: c.post("/v1/runs", json={
            "agent": "echo", "input": 1, "idempotency_key": "k1"}, headers=h),
        ("GET", "/v1/runs"): lambda: c.get("/v1/runs", headers=h),
        ("GET", "/v1/runs/{run_id}"): lambda: c.get(f"/v1/runs/{ids['done']}", headers=h),
        ("GET", "/v1/runs/{run_id}/events"): lambda: c.get(
            f"/v1/runs/{ids['done']}/events", params={"follow": "false"}, headers=h),
        ("POST", "/v1/runs/{run_id}/signals"): lambda: c.post(
            f"/v1/runs/{run}/signals", json={"name": "go", "payload": "from B"}, headers=h),
        ("POST", "/v1/runs/{run_id}/cancel"): lambda: c.post(
            f"/v1/runs/{run}/cancel", json={"reason": "B"}, headers=h),
        ("DELETE", "/v1/runs/{run_id}"): lambda: c.delete(f"/v1/runs/{ids['done']}", headers=h),
        ("POST", "/v1/runs/{run_id}/resolve"): lambda: c.post(
            f"/v1/runs/{run}/resolve", json={"action": "fail"}, headers=h),
        ("GET", "/v1/approvals"): lambda: c.get("/v1/approvals", headers=h),
        ("POST", "/v1/approvals/{approval_id}/approve"): lambda: c.post(
            f"/v1/approvals/{aid}/approve", json={"signed": signed.to_json()}, headers=h),
        ("POST", "/v1/approvals/{approval_id}/deny"): lambda: c.post(
            f"/v1/approvals/{aid}/deny", json={}, headers=h),
        ("GET", "/v1/tools"): lambda: c.get("/v1/tools", headers=h),
        ("GET", "/v1/agents"): lambda: c.get("/v1/agents", headers=h),
        ("GET", "/v1/usage"): lambda: c.get("/v1/usage", headers=h),
        ("GET", "/v1/audit"): lambda: c.get("/v1/audit", headers=h),
        ("GET", "/v1/me"): lambda: c.get("/v1/me", headers=h),
    }


def test_every_endpoint_has_a_cross_tenant_case(world: tuple[S.Api, dict[str, Any]]) -> None:
    api, ids = world
    routes = {(method.upper(), path) for path, ops in api.app.openapi()["paths"].items()
              for method in ops}
    assert routes == set(_by_route(api, ids, "b-admin"))


@pytest.mark.parametrize("label", ["b-viewer", "b-operator", "b-approver", "b-admin"])
def test_tenant_b_gets_nothing_of_tenant_a(world: tuple[S.Api, dict[str, Any]],
                                           label: str) -> None:
    api, ids = world
    answers = {route: call() for route, call in _by_route(api, ids, label).items()}
    secrets = (ids["waiting"], ids["done"], ids["paying"], "A-only", "acme", ids["approval"])
    for route, r in answers.items():
        assert r.status_code < 500, (route, r.text)
        if "{" in route[1]:  # aimed at one of A's objects
            assert r.status_code in (403, 404), (route, r.status_code, r.text)
        assert not any(s in r.text for s in secrets), (route, r.text)
    for route in [k for k in answers if "{" in k[1]]:
        # where the role allows the action at all, the answer is the same 404 as for nothing
        if answers[route].status_code != 403:
            assert answers[route].json()["message"] in ("no such run here",
                                                        "no such approval here")
    # A's objects are untouched
    h = api.as_("viewer")
    assert api.client.get(f"/v1/runs/{ids['waiting']}", headers=h).json()["run"]["status"] == (
        "waiting")
    assert api.client.get(f"/v1/runs/{ids['done']}", headers=h).json()["run"]["status"] == (
        "succeeded")  # not deleted
    [p] = api.client.get("/v1/approvals", headers=h).json()["approvals"]
    assert p["decided_by"] == []
    audit = api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"]
    assert [e["action"] for e in audit] == ["cancel"]


def test_an_idempotency_key_is_per_tenant(world: tuple[S.Api, dict[str, Any]]) -> None:
    api, _ = world
    a = api.client.post("/v1/runs", json={"agent": "echo", "input": 1, "idempotency_key": "same"},
                        headers=api.as_("operator")).json()["run"]
    b = api.client.post("/v1/runs", json={"agent": "echo", "input": 1, "idempotency_key": "same"},
                        headers=api.as_("b-operator")).json()["run"]
    assert a["id"] != b["id"] and (a["tenant"], b["tenant"]) == ("acme", "globex")


def test_a_key_of_b_lists_only_b(world: tuple[S.Api, dict[str, Any]]) -> None:
    api, _ = world
    mine = api.submit("echo", "b's", label="b-operator")
    runs = api.client.get("/v1/runs", headers=api.as_("b-viewer")).json()["runs"]
    assert mine["id"] in [r["id"] for r in runs]
    assert {r["tenant"] for r in runs} == {"globex"}
