"""schemathesis against /openapi.json: every operation, authenticated, against a real uvicorn
server on 127.0.0.1 with data of its tenant in the store. The checks: no server error, every
response's status, content type, headers and body as the OpenAPI description says."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
import uvicorn
from schemathesis.specs.openapi import checks as oa

from tether.server.api import create_app

from . import api_support as S

pytestmark = pytest.mark.slow
CHECKS = [oa.status_code_conformance, oa.content_type_conformance,
          oa.response_schema_conformance, oa.response_headers_conformance]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # it runs in a thread of the test process
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    db = tmp / "tether.db"
    keys = S.make_keys(db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(S.config(db, signing_keys=S.write_signing_keys(tmp / "sk")))
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield {"base": f"http://127.0.0.1:{port}", "keys": keys, "tmp": tmp}
    server.should_exit = True
    thread.join(timeout=30)


def test_api_conforms_to_its_openapi(served: dict[str, Any]) -> None:
    """Each operation with generated requests (schemathesis' strategies driven by hypothesis
    here: its pytest plugin's fixture loader does not run on pytest 9)."""
    schema = schemathesis.openapi.from_url(served["base"] + "/openapi.json")
    headers = {"Authorization": f"Bearer {served['keys']['admin']}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 16
    sent: dict[str, int] = {}
    real = _seed(served["base"], served["keys"])
    for op in operations:
        _exercise(op, headers, sent, real)
    exercised = {k.rsplit(" ", 1)[0] for k in sent}
    assert exercised == {f"{op.method.upper()} {op.path}" for op in operations}
    # authenticated for real: every read of a collection answered 200 at least once
    for path in ("/v1/runs", "/v1/approvals", "/v1/tools", "/v1/agents", "/v1/usage",
                 "/v1/audit", "/v1/me"):
        assert sent.get(f"GET {path} 200"), sorted(sent)
    print(sorted(sent.items()))


def _seed(base: str, keys: dict[str, str]) -> dict[str, list[str]]:
    """Runs of the key's tenant in every state an operation cares about, so generated requests
    reach real runs and approvals, not only 404s."""
    h = {"Authorization": f"Bearer {keys['operator']}"}
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        ids = [c.post("/v1/runs", json={"agent": agent, "input": inp}).json()["run"]["id"]
               for agent, inp in (("echo", 1), ("waiter", None), ("waiter", None),
                                  ("counter", 2), ("assistant", "refund A-7"),
                                  ("assistant", "transfer")) for _ in range(2)]
        deadline = time.monotonic() + 30
        while len(approvals := c.get("/v1/approvals").json()["approvals"]) < 4:
            assert time.monotonic() < deadline, "the seeded runs did not reach their approvals"
            time.sleep(0.1)
    return {"run_id": ids, "approval_id": [a["id"] for a in approvals]}


def _exercise(op: Any, headers: dict[str, str], sent: dict[str, int],
              real: dict[str, list[str]]) -> None:
    name = f"{op.method.upper()} {op.path}"

    @hypothesis.given(case=op.as_strategy(), pick=st.integers(0, 40))
    @hypothesis.settings(max_examples=40, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def check(case: Any, pick: int) -> None:
        for param, values in real.items():  # two in three aim at a real object
            if param in (case.path_parameters or {}) and pick % 3:
                case.path_parameters[param] = values[pick % len(values)]
        if case.path.endswith("/events"):
            case.query = {**(case.query or {}), "follow": "false"}  # a live stream
        response = case.call(headers=headers, timeout=30)
        sent[f"{name} {response.status_code}"] = sent.get(f"{name} {response.status_code}", 0) + 1
        assert response.status_code < 500, (name, response.text)
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    except hypothesis.errors.FlakyFailure as exc:
        if not _cpython_ast_bug(exc):
            raise
        check()  # once more: the failure was CPython's, not the API's (see `_cpython_ast_bug`)


def _cpython_ast_bug(exc: BaseException, seen: set[int] | None = None) -> bool:
    """Whether `exc` holds CPython 3.11's "AST constructor recursion depth mismatch"
    SystemError: raised by `ast.parse` deep in a stack (hypothesis parsing a schemathesis
    strategy's source to describe a lambda while drawing), fixed in later CPython releases.
    It failed one CI run (hypothesis then reported it as flaky); nothing of Tether was called."""
    if isinstance(exc, SystemError) and "AST constructor recursion depth" in str(exc):
        return True
    seen = seen if seen is not None else set()
    seen.add(id(exc))
    inner = [*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__]
    return any(e is not None and id(e) not in seen and _cpython_ast_bug(e, seen)
               for e in inner)
