"""The REST API end to end on a real SQLite store with the embedded worker: submit, read with
the timeline, list and filter, signal, cancel, resolve an in-doubt step, approvals (two-person,
signed, repeated and forged decisions refused), audit, usage, tools, errors without traces."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.guards.approvals import sign_decision
from tether.runtime import Tether
from tether.store import NewEvent, dumps

from . import api_support as S


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S.Api]:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    with S.running(tmp_path) as api:
        yield api


def _ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_submit_runs_on_the_embedded_worker_and_reads_back_with_its_timeline(api: S.Api) -> None:
    run = api.submit("echo", {"x": 1})
    assert run["status"] == "queued" and run["tenant"] == "acme" and run["agent_name"] == "echo"
    body = api.wait(run["id"], "succeeded")
    assert body["run"]["result"] == {"x": 1}
    kinds = [row["kind"] for row in body["timeline"]]
    assert kinds[0] == "run_submitted" and kinds[-1] == "run_completed"
    assert [row["seq"] for row in body["timeline"]] == list(range(1, len(kinds) + 1))


def test_list_filters_by_status_and_agent(api: S.Api) -> None:
    done = api.submit("echo", 1)
    waiting = api.submit("waiter")
    api.wait(done["id"], "succeeded")
    api.wait(waiting["id"], "waiting")
    h = api.as_("viewer")
    ids = lambda r: [x["id"] for x in r.json()["runs"]]  # noqa: E731
    assert ids(api.client.get("/v1/runs", params={"status": "waiting"}, headers=h)) == [
        waiting["id"]]
    assert ids(api.client.get("/v1/runs", params={"agent": "echo"}, headers=h)) == [done["id"]]
    both = ids(api.client.get("/v1/runs", params=[("status", "waiting"),
                                                   ("status", "succeeded")], headers=h))
    assert set(both) == {done["id"], waiting["id"]}
    assert ids(api.client.get("/v1/runs", params={"agent": "nope"}, headers=h)) == []


def test_signal_wakes_a_waiting_run_and_cancel_is_audited(api: S.Api) -> None:
    a = api.submit("waiter")
    api.wait(a["id"], "waiting")
    r = api.client.post(f"/v1/runs/{a['id']}/signals", json={"name": "go", "payload": [1, 2]},
                        headers=api.as_("operator"))
    assert r.status_code == 202, r.text
    assert api.wait(a["id"], "succeeded")["run"]["result"] == [1, 2]

    b = api.submit("waiter")
    api.wait(b["id"], "waiting")
    r = api.client.post(f"/v1/runs/{b['id']}/cancel", json={"reason": "not needed"},
                        headers=api.as_("operator"))
    assert r.status_code == 202 and r.json()["cancelled"] == [b["id"]]
    assert api.wait(b["id"], "cancelled")["run"]["reason"] == "not needed"
    again = api.client.post(f"/v1/runs/{b['id']}/cancel", headers=api.as_("operator"))
    assert again.status_code == 409 and "cancelled" in again.json()["message"]
    entries = api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"]
    assert [(e["action"], e["run_id"], e["actor"].split()[0]) for e in entries] == [
        ("cancel", b["id"], "olga")]
    assert entries[0]["detail"]["reason"] == "not needed"


def test_roles_are_ordered(api: S.Api) -> None:
    viewer = api.client.post("/v1/runs", json={"agent": "echo", "input": 1},
                             headers=api.as_("viewer"))
    assert viewer.status_code == 403 and "operator" in viewer.json()["message"]
    op_audit = api.client.get("/v1/audit", headers=api.as_("operator"))
    assert op_audit.status_code == 403
    run = api.submit("assistant", "refund A-7")
    api.wait(run["id"], "waiting")
    aid = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()["approvals"][0]["id"]
    r = api.client.post(f"/v1/approvals/{aid}/approve", json={}, headers=api.as_("operator"))
    assert r.status_code == 403 and "approver" in r.json()["message"]
    assert api.submit("echo", 2, label="admin")["status"] == "queued"  # admin may do it all


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer tk_000_forged", "Basic abc"])
def test_no_valid_key_no_access(api: S.Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = api.client.get("/v1/runs", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated" and r.json()["fix"]


def test_two_person_approval_through_the_api(api: S.Api, tmp_path: Path) -> None:
    run = api.submit("assistant", "transfer 250")
    api.wait(run["id"], "waiting")
    [pending] = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()["approvals"]
    assert pending["critical"] and pending["required"] == 2 and pending["tool"] == "transfer"
    aid = pending["id"]

    first = api.client.post(f"/v1/approvals/{aid}/approve", json={"reason": "ok"},
                            headers=api.as_("alice"))
    assert first.status_code == 200 and first.json()["status"] == "pending"
    repeated = api.client.post(f"/v1/approvals/{aid}/approve", json={},
                               headers=api.as_("alice"))
    assert repeated.status_code == 409 and "two distinct approvers" in repeated.json()["message"]
    assert _ledger(tmp_path) == []  # one person is not enough
    second = api.client.post(f"/v1/approvals/{aid}/approve", json={}, headers=api.as_("bob"))
    assert second.json()["status"] == "approved"
    done = api.wait(run["id"], "succeeded")
    assert done["run"]["result"]["answer"] == "done: sent 250.0 to acct-9"
    assert _ledger(tmp_path) == ["transfer acct-9 250.0"]
    assert any(row["decision"].startswith("approve") for row in done["timeline"])
    actions = [(e["action"], e["actor"].split()[0])
               for e in api.client.get("/v1/audit", headers=api.as_("admin")).json()["entries"]]
    assert actions == [("approve", "alice"), ("approve_refused", "alice"), ("approve", "bob")]


def _pending(api: S.Api, goal: str) -> tuple[str, str, str]:
    run = api.submit("assistant", goal)
    api.wait(run["id"], "waiting")
    [p] = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()["approvals"]
    return run["id"], p["id"], p["action_digest"]


def test_signed_decisions_forged_or_replayed_are_refused(api: S.Api, tmp_path: Path) -> None:
    run_id, aid, digest = _pending(api, "transfer 250")
    # bob's key sends a decision signed by alice's private key but claiming to be bob
    forged = sign_decision(S.private_key("alice"), aid, "approve", "bob", digest)
    r = api.client.post(f"/v1/approvals/{aid}/approve",
                        json={"signed": forged.to_json()}, headers=api.as_("bob"))
    assert r.status_code == 409 and "invalid signature" in r.json()["message"]
    # alice's key delivering a decision signed as bob: refused before any check of the signature
    bobs = sign_decision(S.private_key("bob"), aid, "approve", "bob", digest)
    r = api.client.post(f"/v1/approvals/{aid}/approve", json={"signed": bobs.to_json()},
                        headers=api.as_("alice"))
    assert r.status_code == 403 and "signed as 'bob'" in r.json()["message"]
    # a tampered signature (one bit flipped)
    own = sign_decision(S.private_key("alice"), aid, "approve", "alice", digest)
    sig = bytearray(base64.b64decode(own.signature or ""))
    sig[0] ^= 1
    tampered = {**own.to_json(), "signature": base64.b64encode(bytes(sig)).decode()}
    r = api.client.post(f"/v1/approvals/{aid}/approve", json={"signed": tampered},
                        headers=api.as_("alice"))
    assert r.status_code == 409 and "invalid signature" in r.json()["message"]
    # the genuine one goes through, its replay does not
    assert api.client.post(f"/v1/approvals/{aid}/approve", json={"signed": own.to_json()},
                           headers=api.as_("alice")).json()["status"] == "pending"
    replay = api.client.post(f"/v1/approvals/{aid}/approve", json={"signed": own.to_json()},
                             headers=api.as_("alice"))
    assert replay.status_code == 409
    # a decision for another action (digest) is refused
    other = sign_decision(S.private_key("bob"), aid, "approve", "bob", "0" * 64)
    r = api.client.post(f"/v1/approvals/{aid}/approve", json={"signed": other.to_json()},
                        headers=api.as_("bob"))
    assert r.status_code == 409 and "different action" in r.json()["message"]
    assert _ledger(tmp_path) == []
    assert api.wait(run_id, "waiting")["run"]["status"] == "waiting"


def test_unsigned_decision_without_a_server_key_is_refused(tmp_path: Path) -> None:
    with S.running(tmp_path, signing_keys=None) as api:
        _, aid, _ = _pending(api, "refund A-7")
        r = api.client.post(f"/v1/approvals/{aid}/approve", json={}, headers=api.as_("alice"))
        assert r.status_code == 422 and r.json()["error"] == "unsigned_decision"


def test_deny_ends_in_a_refusal_observation(api: S.Api, tmp_path: Path) -> None:
    run_id, aid, _ = _pending(api, "refund A-7")
    r = api.client.post(f"/v1/approvals/{aid}/deny", json={"reason": "no"},
                        headers=api.as_("bob"))
    assert r.status_code == 200 and r.json()["status"] == "denied"
    done = api.wait(run_id, "succeeded")
    assert _ledger(tmp_path) == []
    assert "approval_denied" in str(done["run"]["result"])


def test_the_api_cannot_start_an_ungoverned_run(api: S.Api, tmp_path: Path) -> None:
    """The run records its catalogue entry's guards; no request field can drop or swap them."""
    for extra in ({"guards": None}, {"guards": "tests.server.api_support:TOOLS"},
                  {"options": {"guards": None}}):
        r = api.client.post("/v1/runs", json={"agent": "assistant", "input": "wipe", **extra},
                            headers=api.as_("operator"))
        assert r.status_code == 422 and r.json()["where"].startswith("body"), r.text
    run = api.submit("assistant", "wipe prod")
    assert run["guards"] == "tests.server.api_support:GUARDS"
    done = api.wait(run["id"], "succeeded")
    assert _ledger(tmp_path) == []  # the policy denied the destructive call
    assert any(row["decision"].startswith("deny") for row in done["timeline"])


def test_a_separate_worker_without_guards_still_enforces_the_runs_guards(tmp_path: Path) -> None:
    """`--no-worker`: runs submitted through the API are executed by another worker; it was
    given no guards, yet it enforces the ones recorded with the run."""
    with S.running(tmp_path, embedded_worker=False) as api:
        run = api.submit("assistant", "wipe prod")
        t = Tether(tmp_path / "tether.db")
        done = asyncio.run(t.drive(run["id"]))
        t.close()
        assert done.status == "succeeded" and _ledger(tmp_path) == []
        body = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("viewer")).json()
        assert any(row["decision"].startswith("deny") for row in body["timeline"])


def test_budget_is_checked_and_needs_guards(api: S.Api) -> None:
    r = api.client.post("/v1/runs", json={"agent": "echo", "input": 1, "budget": {"steps": 3}},
                        headers=api.as_("operator"))
    assert r.status_code == 422 and "without guards" in r.json()["message"]
    r = api.client.post("/v1/runs", json={"agent": "assistant", "input": "x",
                                          "budget": {"bananas": 3}}, headers=api.as_("operator"))
    assert r.status_code == 422 and "bananas" in r.json()["message"]
    run = api.submit("assistant", "lookup", budget={"steps": 1})
    assert run["budget"] == {"steps": 1}
    assert api.wait(run["id"], "halted")["run"]["status"] == "halted"


def test_resolve_an_in_doubt_step(tmp_path: Path) -> None:
    """A worker died inside step `add0` (its start journaled, no outcome): the run waits for a
    person; resolving it through the API as skipped lets the run go on with that result."""
    with S.running(tmp_path, embedded_worker=False) as api:
        run_id = api.submit("counter", 3)["id"]
        t = Tether(tmp_path / "tether.db")
        t.store.write(lambda tx: tx.append_events(run_id, [NewEvent(
            tx.next_seq(run_id), "step_started", "1", "add0", dumps({"attempt": 1}), tx.now())]))
        waiting = asyncio.run(t.drive(run_id))
        assert waiting.status == "waiting" and "outcome is unknown" in (waiting.reason or "")
        wrong = api.client.post(f"/v1/runs/{run_id}/signals", json={"name": "go"},
                                headers=api.as_("operator"))
        assert wrong.status_code == 202  # a signal does not wake a run waiting for a person
        assert t.get(run_id).status == "waiting"
        r = api.client.post(f"/v1/runs/{run_id}/resolve", json={"action": "skip", "result": 5},
                            headers=api.as_("operator"))
        assert r.status_code == 200, r.text
        done = asyncio.run(t.drive(run_id))
        assert done.status == "succeeded" and done.result == 5 + 1 + 2
        huge = api.client.post(f"/v1/runs/{run_id}/resolve",
                               json={"action": "skip", "result": 2**70},
                               headers=api.as_("operator"))
        assert huge.status_code == 422 and huge.json()["where"] == "body.result"
        again = api.client.post(f"/v1/runs/{run_id}/resolve", json={"action": "skip"},
                                headers=api.as_("operator"))
        assert again.status_code == 409 and "already finished" in again.json()["message"]
        t.close()


@pytest.mark.parametrize("body,where", [
    ({"agent": "echo", "input": 1, "colour": "red"}, "body.colour"),
    ({"input": 1}, "body.agent"),
    ({"agent": "nobody"}, "body.agent"),
])
def test_bad_requests_say_what_where_and_what_to_do(api: S.Api, body: dict[str, Any],
                                                     where: str) -> None:
    r = api.client.post("/v1/runs", json=body, headers=api.as_("operator"))
    assert r.status_code in (404, 422)
    err = r.json()
    assert set(err) == {"error", "message", "where", "fix"} and err["where"] == where
    assert "Traceback" not in r.text


def test_body_size_limit_and_no_stack_traces(tmp_path: Path) -> None:
    with S.running(tmp_path, max_body=1000) as api:
        r = api.client.post("/v1/runs", json={"agent": "echo", "input": "x" * 2000},
                            headers=api.as_("operator"))
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"agent": "echo", "input": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}'

        r = api.client.post("/v1/runs", content=chunks(), headers={
            **api.as_("operator"), "Content-Type": "application/json"})
        assert r.status_code == 413
        r = api.client.post("/v1/runs", content=b"{not json", headers={
            **api.as_("operator"), "Content-Type": "application/json"})
        assert r.status_code == 422 and "Traceback" not in r.text
        assert api.client.get("/v1/nothing", headers=api.as_("viewer")).json()["error"] == (
            "not_found")


def test_internal_errors_carry_no_detail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from tether.server.api import create_app

    db = tmp_path / "tether.db"
    keys = S.make_keys(db)
    app = create_app(S.config(db))
    state = app.state.tether

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(state.tether.store, "list_runs", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/runs", headers={"Authorization": f"Bearer {keys['viewer']}"})
    assert r.status_code == 500
    assert r.json()["error"] == "internal" and "secret" not in r.text and "Trace" not in r.text


def test_usage_tools_agents_and_me(api: S.Api) -> None:
    api.wait(api.submit("assistant", "lookup")["id"], "succeeded")
    usage = api.client.get("/v1/usage", headers=api.as_("viewer")).json()
    assert usage["tenant"] == "acme" and usage["runs"] == {"succeeded": 1}
    assert usage["counters"]["tool_calls"] == 1
    assert api.client.get("/v1/usage", params={"day": "yesterday"},
                          headers=api.as_("viewer")).status_code == 422
    names = [t["name"] for t in api.client.get("/v1/tools", headers=api.as_("viewer"))
             .json()["tools"]]
    assert names == ["lookup", "refund", "transfer", "wipe"]
    agents = {a["name"]: a for a in api.client.get("/v1/agents", headers=api.as_("viewer"))
              .json()["agents"]}
    assert agents["assistant"]["guards"] == "tests.server.api_support:GUARDS"
    me = api.client.get("/v1/me", headers=api.as_("alice")).json()
    assert me == {**me, "tenant": "acme", "role": "approver", "name": "alice"}


def test_the_api_answers_while_a_run_blocks_its_step(api: S.Api) -> None:
    import time

    run = api.submit("slow", 6)
    deadline = time.monotonic() + 20
    while not any(r["kind"] == "step_started" for r in api.client.get(
            f"/v1/runs/{run['id']}", headers=api.as_("viewer")).json()["timeline"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t = time.perf_counter()
    for i in range(5):
        assert api.submit("echo", i)["status"] == "queued"
        assert api.client.get("/v1/me", headers=api.as_("viewer")).status_code == 200
    elapsed = time.perf_counter() - t
    assert api.client.get(f"/v1/runs/{run['id']}",
                          headers=api.as_("viewer")).json()["run"]["status"] == "running"
    assert elapsed < 5, elapsed  # ten requests served while the step sleeps 6 s


def test_idempotency_survives_a_server_restart(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tether.server.api import create_app

    with S.running(tmp_path) as api:
        first = api.submit("echo", {"n": 1}, idempotency_key="once")
        keys = api.keys
    with TestClient(create_app(S.config(tmp_path / "tether.db"))) as client:
        r = client.post("/v1/runs", json={"agent": "echo", "input": {"n": 1},
                                          "idempotency_key": "once"},
                        headers={"Authorization": f"Bearer {keys['operator']}"})
        assert r.status_code == 200 and r.json()["created"] is False
        assert r.json()["run"]["id"] == first["id"]
        assert len(client.get("/v1/runs", headers={
            "Authorization": f"Bearer {keys['viewer']}"}).json()["runs"]) == 1


def test_hostile_bodies_get_clear_errors(api: S.Api) -> None:
    h = {**api.as_("operator"), "Content-Type": "application/json"}
    for depth, status in ((100_000, 400), (5_000, 400), (300, 422)):
        body = b'{"agent": "echo", "input": ' + b"[" * depth + b"]" * depth + b"}"
        r = api.client.post("/v1/runs", content=body, headers=h)
        assert r.status_code == status, (depth, r.text)
        assert r.json()["where"].startswith("body") and r.json()["fix"]
    big = api.client.post("/v1/runs", json={"agent": "echo", "input": 2**70}, headers=h)
    assert big.status_code == 422 and "input" in big.json()["message"]
    assert api.client.get("/v1/runs", headers=h).json()["runs"] == []


def test_a_key_revoked_after_a_submit_submits_nothing_more(api: S.Api, tmp_path: Path) -> None:
    """The submit route takes a key it has seen from memory and re-reads it in the submit's
    own transaction: revoked by another process (`tether keys revoke`) in between, the next
    submit is refused and creates no run."""
    from tether.server.keys import ApiKeys

    api.submit("echo", 1)  # the key is now known to the server
    t = Tether(tmp_path / "tether.db")
    try:
        keys = ApiKeys(t.store)
        [olga] = [p for p in keys.list("acme") if p.name == "olga"]
        assert keys.revoke(olga.key_id)
    finally:
        t.close()
    for _ in range(2):  # refused, and not remembered as valid afterwards
        r = api.client.post("/v1/runs", json={"agent": "echo", "input": 2,
                                              "idempotency_key": "after-revoke"},
                            headers=api.as_("operator"))
        assert r.status_code == 401 and "revoked" in r.json()["message"], r.text
    runs = api.client.get("/v1/runs", headers=api.as_("viewer")).json()["runs"]
    assert [r["input"] for r in runs] == [1]


def test_an_agent_that_needs_an_input_is_refused_every_time(api: S.Api) -> None:
    """The agent check is done once per agent; a failed check is not remembered as passed."""
    for _ in range(2):
        r = api.client.post("/v1/runs", json={"agent": "assistant"},
                            headers=api.as_("operator"))
        assert r.status_code == 422 and "needs an input" in r.json()["message"], r.text


def test_an_agent_from_a_file_keeps_its_name(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a catalogue entry `shop.py:support` and the absolute reference its runs record
    were compared as written, so its runs had no `agent_name` and `?agent=support` found none."""
    (tmp_path / "shop.py").write_text("async def support(ctx, goal):\n    return goal\n")
    monkeypatch.chdir(tmp_path)
    with S.running(tmp_path, extra_agents={"support": "shop.py:support"}) as api:
        run = api.submit("support", {"q": 1})
        assert run["agent_name"] == "support"
        api.wait(run["id"], "succeeded")
        api.submit("echo", 2)
        listed = api.client.get("/v1/runs", params={"agent": "support"},
                                headers=api.as_("viewer")).json()["runs"]
    assert [(r["id"], r["agent_name"]) for r in listed] == [(run["id"], "support")]
