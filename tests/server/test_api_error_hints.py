"""API errors speak the API: a new user's mistakes answered with what to send, in JSON body
field names and routes — never a CLI flag (`--input`), a command (`tether show`) or a Python
call (`submit(agent, input)`), which a caller of the REST API has no use for.

Found by walking through docs/server.md as a new user: an unknown agent pointed at the runs and
approvals lists instead of the agents; a missing input gave CLI and Python advice; a malformed
body said `body.28: JSON decode error`. The library's own messages (written for the CLI and
Python callers) reach the API through `errors.from_tether`, so they are checked there too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.guards import inbox
from tether.guards.approvals import ApprovalError, KeyRegistry
from tether.runtime import Tether, ops
from tether.server.api.errors import from_tether

from . import api_support as S

#: what only a command line or a Python program could act on
CLI_OR_PYTHON = re.compile(r"--[a-z]|`tether |tether [a-z]+ |\bsubmit\(|GuardConfig|"
                           r"tether\.guards\.")


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S.Api]:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    extra = {"needs": "tests.server.api_support:assistant"}  # its input has no default
    with S.running(tmp_path, extra_agents=extra) as api:
        yield api


def _post(api: S.Api, body: Any, path: str = "/v1/runs") -> dict[str, Any]:
    r = api.client.post(path, json=body, headers=api.as_("operator"))
    assert r.status_code >= 400, r.text
    err: dict[str, Any] = r.json()
    assert set(err) == {"error", "message", "where", "fix"}, err
    return err


def _speaks_the_api(err: dict[str, Any]) -> None:
    said = f"{err['message']} {err['fix']}"
    assert not CLI_OR_PYTHON.search(said), said


def test_an_unknown_agent_names_the_agents_the_server_offers(api: S.Api) -> None:
    """The agents file is the server's, not a tenant's, and GET /v1/agents shows it to any
    key: naming its agents leaks nothing, and is what the caller needs."""
    err = _post(api, {"agent": "ecko", "input": 1})
    assert err["error"] == "not_found" and err["where"] == "body.agent"
    assert err["message"] == "no agent named 'ecko' here"
    assert err["fix"].startswith("did you mean 'echo'? ")
    for name in ("assistant", "counter", "echo", "needs", "slow", "waiter"):
        assert repr(name) in err["fix"], err["fix"]
    assert "GET /v1/agents" in err["fix"] and "/v1/approvals" not in err["fix"]
    _speaks_the_api(err)


def test_a_name_like_no_agent_still_lists_them_without_a_guess(api: S.Api) -> None:
    err = _post(api, {"agent": "zzzzzz"})
    assert "did you mean" not in err["fix"] and "'echo'" in err["fix"]


def test_a_missing_input_names_the_body_field_not_cli_flags(api: S.Api) -> None:
    err = _post(api, {"agent": "needs"})
    assert err["error"] == "invalid_request" and err["where"] == "body.input"
    assert err["message"].startswith("agent 'needs' needs an input"), err
    assert "'goal'" in err["message"]  # which parameter of the agent wants it
    assert '"input"' in err["fix"], err
    _speaks_the_api(err)


def test_an_empty_idempotency_key_header_is_not_blamed_on_the_input(api: S.Api) -> None:
    """The library's "an idempotency key must be 1 to 255 characters" is an InvalidInput too:
    the header's schema refuses it first, naming the header."""
    r = api.client.post("/v1/runs", json={"agent": "echo", "input": 1},
                        headers={**api.as_("operator"), "Idempotency-Key": ""})
    assert r.status_code == 422 and r.json()["where"] == "header.idempotency-key", r.text


@pytest.mark.parametrize("raw,reason,line,column,char", [
    (b'{"agent": "echo",\n "input": nope}', "expecting value", 2, 11, 28),
    (b'{"agent": "echo"', "expecting ',' delimiter", 1, 17, 16),
    (b'{"agent": "echo", }', "expecting property name enclosed in double quotes", 1, 19, 18),
])
def test_malformed_json_says_what_is_wrong_and_where(api: S.Api, raw: bytes, reason: str,
                                                     line: int, column: int, char: int) -> None:
    r = api.client.post("/v1/runs", content=raw, headers={
        **api.as_("operator"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"] == (f"the request body is not valid JSON: {reason} at line {line} "
                              f"column {column} (character {char})"), err
    assert err["where"] == f"body.{char}"  # the structured place stays
    assert "JSON decode error" not in err["message"]


def test_library_advice_reaches_the_api_in_api_words(api: S.Api) -> None:
    """Resolve a run with no in-doubt step, delete a live tree: the library says `tether show`
    and `tether cancel`; the API names its own routes."""
    run = api.submit("waiter")
    api.wait(run["id"], "waiting")
    r = api.client.post(f"/v1/runs/{run['id']}/resolve", json={"action": "retry"},
                        headers=api.as_("operator"))
    assert r.status_code == 409
    err = r.json()
    assert f"GET /v1/runs/{run['id']}" in err["message"], err
    _speaks_the_api(err)
    r = api.client.delete(f"/v1/runs/{run['id']}", headers=api.as_("admin"))
    assert r.status_code == 409
    err = r.json()
    assert f"POST /v1/runs/{run['id']}/cancel" in err["message"], err
    _speaks_the_api(err)


def test_no_server_signing_key_says_what_to_send(tmp_path: Path) -> None:
    with S.running(tmp_path, signing_keys=None) as api:
        run = api.submit("assistant", "refund A-7")
        api.wait(run["id"], "waiting")
        [pending] = api.client.get("/v1/approvals", headers=api.as_("viewer")).json()[
            "approvals"]
        r = api.client.post(f"/v1/approvals/{pending['id']}/approve", json={},
                            headers=api.as_("alice"))
        assert r.status_code == 422, r.text
        err = r.json()
        assert err["error"] == "unsigned_decision" and err["where"] == "body.signed"
        for field in ("approval_id", "verdict", "approver", "action_digest", "nonce",
                      "signature"):
            assert field in err["fix"], err
        _speaks_the_api(err)


def _library_errors(tmp_path: Path) -> Iterator[Exception]:
    """Errors the library raises with CLI or Python advice, raised by the library itself (so
    a change of its words shows here)."""
    t = Tether(tmp_path / "lib.db")
    try:
        try:
            inbox.find(t.store, "not-an-approval-id")
        except ApprovalError as exc:
            yield exc
        try:
            KeyRegistry().get("dave")
        except ApprovalError as exc:
            yield exc
        run_id = t.submit(S.waiter)
        for call in (lambda: t.delete(run_id),
                     lambda: t.store.write(ops.resolve_in_doubt(run_id, "retry"))):
            try:
                call()
            except Exception as exc:
                yield exc
    finally:
        t.close()


def test_every_library_message_the_api_passes_on_speaks_the_api(tmp_path: Path) -> None:
    seen = list(_library_errors(tmp_path))
    assert len(seen) == 4, seen
    assert all(CLI_OR_PYTHON.search(str(exc)) for exc in seen), seen  # what they say in Python
    for exc in seen:
        err = from_tether(exc, "body")
        _speaks_the_api({"message": err.message, "fix": err.fix})
