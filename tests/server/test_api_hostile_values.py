"""Values a hostile client sends that JSON allows on the wire (Python's parser does) but the
journal cannot hold as sent: NaN, Infinity, 1e999, lone surrogates, integers beyond 64 bits.

Before: the journal's encoder wrote NaN and Infinity as null and a lone surrogate as the escape
of its bytes, so `{"input": NaN}` made a run whose input was null, a signal's NaN payload
arrived as null, and `{"budget": {"steps": NaN}}` queued a run with no step limit — 201 and
202 for requests the server did not do as asked. Now each is a 422 that names the value's place
in the body, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .api_hostile_support import Live, live


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live(tmp_path_factory.mktemp("values")) as s:
        yield s


def _runs(served: Live) -> list[dict[str, Any]]:
    with served.client() as c:
        return list(c.get("/v1/runs", headers=served.auth("viewer")).json()["runs"])


def _post(served: Live, path: str, body: bytes, label: str = "operator") -> Any:
    with served.client() as c:
        return c.post(path, content=body, headers={**served.auth(label),
                                                   "Content-Type": "application/json"})


@pytest.mark.parametrize(("body", "where", "says"), [
    (b'{"agent": "echo", "input": NaN}', "body.input", "NaN"),
    (b'{"agent": "echo", "input": [1, {"x": Infinity}]}', "body.input[1].x", "Infinity"),
    (b'{"agent": "echo", "input": {"a": -Infinity}}', "body.input.a", "-Infinity"),
    (b'{"agent": "echo", "input": 1e999}', "body.input", "Infinity"),
    (b'{"agent": "echo", "input": "x\\ud800y"}', "body.input", "surrogate"),
    (b'{"agent": "echo", "input": {"\\udfff": 1}}', "body.input", "surrogate"),
    (b'{"agent": "echo", "input": [' + b"9" * 25 + b"]}", "body.input[0]", "64-bit"),
    (b'{"agent": "assistant", "input": "lookup", "budget": {"steps": NaN}}',
     "body.budget.steps", "finite"),
    (b'{"agent": "assistant", "input": "lookup", "budget": {"cost_usd": Infinity}}',
     "body.budget.cost_usd", "finite"),
])
def test_a_submit_with_a_value_the_journal_would_change_is_refused(
        served: Live, body: bytes, where: str, says: str) -> None:
    before = len(_runs(served))
    r = _post(served, "/v1/runs", body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "invalid_request"
    assert where.startswith(err["where"]) and err["where"].count(".") == 1 + (
        "budget" in where), err  # the field (body.input), or the budget's limit
    assert where in err["message"] and says in err["message"], err
    assert len(_runs(served)) == before  # nothing was queued


def test_a_signal_payload_with_nan_is_refused_and_the_run_keeps_waiting(served: Live) -> None:
    run_id = served.submit("waiter")
    served.wait(run_id, "waiting")
    r = _post(served, f"/v1/runs/{run_id}/signals", b'{"name": "go", "payload": {"n": NaN}}')
    assert r.status_code == 422, r.text
    assert "body.payload.n" in r.json()["message"] and "NaN" in r.json()["message"]
    detail = served.wait(run_id, "waiting")
    assert not [row for row in detail["timeline"] if row["kind"] == "signal_received"]
    ok = _post(served, f"/v1/runs/{run_id}/signals", b'{"name": "go", "payload": 1.5}')
    assert ok.status_code == 202, ok.text
    assert served.wait(run_id, "succeeded")["run"]["result"] == 1.5


def test_a_resolve_result_with_infinity_is_refused_before_the_run_is_read(served: Live) -> None:
    run_id = served.submit("waiter")
    r = _post(served, f"/v1/runs/{run_id}/resolve",
              b'{"action": "skip", "result": [Infinity]}')
    assert r.status_code == 422, r.text
    assert "body.result[0]" in r.json()["message"]


def test_finite_edge_values_still_go_through_whole(served: Live) -> None:
    value = {"big": 2**64 - 1, "small": -(2**63), "tiny": 5e-324, "huge": 1.7e308,
             "text": "caf\u00e9 \U0001f600", "nul": "a\u0000b"}
    run_id = served.submit("echo", value)
    assert served.wait(run_id, "succeeded")["run"]["result"] == value


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9\xb2", "\u0663".encode(), b"9" * 30])
def test_a_last_event_id_that_is_no_ascii_number_is_a_422_not_a_crash(
        served: Live, value: bytes) -> None:
    """'²'.isdigit() is True but int('²') raises: the server answered 500 (and uvicorn logged
    "Exception in ASGI application")."""
    run_id = served.submit("echo", 1)
    request = (f"GET /v1/runs/{run_id}/events?follow=false HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nAuthorization: Bearer {served.keys['viewer']}\r\n"
               "Connection: close\r\nLast-Event-ID: ").encode() + value + b"\r\n\r\n"
    answer = served.raw(request)
    status = answer.split(b"\r\n", 1)[0]
    assert b" 422 " in status, answer[:400]
    assert b"last-event-id" in answer.split(b"\r\n\r\n", 1)[1].lower()


def test_a_deeply_nested_nan_is_named_by_its_path(tmp_path: Path) -> None:
    """The walker is iterative: an input nested as deep as the JSON parser allows is judged
    (a recursive walk would have hit Python's recursion limit: a 500)."""
    with live(tmp_path) as s:
        deep = b"[" * 900 + b"NaN" + b"]" * 900
        r = _post(s, "/v1/runs", b'{"agent": "echo", "input": ' + deep + b"}")
        assert r.status_code == 422, r.text
        assert "body.input" + "[0]" * 899 in r.json()["message"]
