"""Authorization headers a hostile client bends: several at once, another scheme.

Before: with two Authorization headers the server took the first and ignored the rest — a
proxy, a WAF or an access log in front of it that reads the last one saw another identity than
the one the request ran as. A `Basic` credential or a bare `Bearer` was answered "no API key in
the request", which sends whoever debugs it looking for a missing header.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .api_hostile_support import Live, live


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live(tmp_path_factory.mktemp("auth")) as s:
        yield s


@pytest.mark.parametrize(("first", "second"), [
    ("b-viewer", "operator"),  # two valid keys of two tenants
    ("operator", "operator"),  # the same key twice: still not one header
    (None, "admin"),  # garbage first, a valid key second
])
def test_two_authorization_headers_are_refused(served: Live, first: str | None,
                                               second: str) -> None:
    one = f"Bearer {served.keys[first]}" if first else "Bearer tk_garbage"
    headers = [("Authorization", one), ("Authorization", f"Bearer {served.keys[second]}")]
    with served.client() as c:
        for method, path in [("GET", "/v1/me"), ("GET", "/v1/runs"),
                             ("POST", "/v1/runs")]:
            r = c.request(method, path, headers=headers, json={"agent": "echo"})
            assert r.status_code == 400, (method, path, r.text)
            assert r.json()["where"] == "Authorization header"
            assert "2 Authorization headers" in r.json()["message"]
        runs = c.get("/v1/runs", headers=served.auth("viewer")).json()["runs"]
    assert runs == []  # the POSTs made nothing


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token tk_x", "Bearer", "tk_abc"])
def test_a_credential_of_another_form_is_named_as_such(served: Live, value: str) -> None:
    with served.client() as c:
        r = c.get("/v1/me", headers={"Authorization": value})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    message = r.json()["message"]
    secret = value.partition(" ")[2] or value
    assert "not 'Bearer <key>'" in message and (value == "Bearer" or secret not in message)


def test_no_header_at_all_still_says_so(served: Live) -> None:
    with served.client() as c:
        r = c.get("/v1/me")
    assert r.status_code == 401 and r.json()["message"] == "no API key in the request"
