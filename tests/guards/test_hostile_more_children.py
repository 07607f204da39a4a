"""Child runs cannot shed their parent's guards: not by options, not by depth, not by tenant.

The runtime creates a child with its parent's options overridden by the spawn's, and in the
tenant the spawn names. Before: `ctx.spawn(child, options={"guards": "...:LAX"})` ran the child
under other guards, and a honeypot tool really executed; `options={"guards": None}` fell back to
whatever the worker runs by default; `options={"max_depth": 50}` grew a tree of depth 6 under a
deployment `max_depth=3`; `ctx.spawn(child, tenant="other")` escaped the parent tenant's policy
(a tool that policy denies ran). Real runs on SQLite, guards declared by reference as
`tether run --guards` records them; `EXECUTED` says what really ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tether import Tether
from tether.guards import loads_policy

from . import hostile_more_support as S

STRICT = "tests.guards.hostile_more_support:STRICT"
LAX = "tests.guards.hostile_more_support:LAX"
# the honeypot `wipe`, and `purge`, which no rule of STRICT allows
CALLS = [["wipe", {}], ["purge", {"table": "users"}]]


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    S.EXECUTED.clear()
    S.STRICT.config.tenant_policies.clear()
    yield
    S.EXECUTED.clear()
    S.STRICT.config.tenant_policies.clear()


async def spawn_run(db_path: str, inp: dict[str, Any], **submit: Any) -> Any:
    t = Tether(db_path, guards=STRICT, lease_ttl=5.0)
    try:
        run_id = t.submit(S.spawner, inp, **submit)
        return await t.drive(run_id)
    finally:
        t.close()


@pytest.mark.parametrize("guards", [LAX, None, 0, ""], ids=repr)
async def test_a_child_cannot_declare_other_guards(db_path, guards):
    record = await spawn_run(db_path, {"calls": CALLS, "options": {"guards": guards}})
    assert record.status == "failed"
    assert "a child runs under its parent's guards" in record.error, record.error
    assert S.EXECUTED == []  # nothing ran: not the honeypot, not the unlisted tool


async def test_a_child_declaring_its_parents_guards_is_governed_by_them(db_path):
    record = await spawn_run(db_path, {"calls": CALLS, "options": {"guards": STRICT}})
    assert record.status == "succeeded", record.error
    honeypot, purge = record.result
    assert honeypot["output"] == {"status": "ok"}  # simulated: the honeypot answered
    assert purge["error"]["type"] == "policy_denied"
    assert S.EXECUTED == []


async def test_a_child_without_options_inherits_the_guards(db_path):
    record = await spawn_run(db_path, {"calls": [["lookup", {"q": "x"}], *CALLS]})
    assert record.status == "succeeded", record.error
    assert [r["ok"] for r in record.result] == [True, True, False]
    assert S.EXECUTED == [("lookup", {"q": "x"})]


async def test_a_child_cannot_raise_the_depth_limit(db_path):
    guards = S.make_guards()
    t = Tether(db_path, interceptors=guards.interceptors(), max_depth=3, lease_ttl=5.0)
    try:
        record = await t.run(S.deep, {"levels": 6, "options": {"max_depth": 50}})
        runs = t.runs()
        spawned = [e for e in t.events(record.id) if e.kind == "child_spawned"]
    finally:
        t.close()
    assert record.status == "failed" and "DepthLimitExceeded" in record.error, record.error
    assert max(r.depth for r in runs) == 3  # the deployment's limit, not the asked 50
    assert spawned[0].data["meta"]["max_depth"] == {"requested": 50, "granted": 3}


async def test_a_lower_depth_limit_asked_by_a_child_is_kept(db_path):
    guards = S.make_guards()
    t = Tether(db_path, interceptors=guards.interceptors(), max_depth=3, lease_ttl=5.0)
    try:
        record = await t.run(S.deep, {"levels": 6, "options": {"max_depth": 2}})
        depth = max(r.depth for r in t.runs())
    finally:
        t.close()
    assert record.status == "failed" and "DepthLimitExceeded" in record.error, record.error
    assert depth == 2


@pytest.mark.parametrize("asked", [-1, "50", True, 2.5], ids=repr)
async def test_a_malformed_depth_limit_is_refused(db_path, asked):
    guards = S.make_guards()
    t = Tether(db_path, interceptors=guards.interceptors(), max_depth=3, lease_ttl=5.0)
    try:
        record = await t.run(S.deep, {"levels": 2, "options": {"max_depth": asked}})
        depth = max(r.depth for r in t.runs())
    finally:
        t.close()
    assert record.status == "failed"
    assert "max_depth must be a non-negative integer" in record.error, record.error
    assert depth == 0


async def test_a_child_in_another_tenant_keeps_its_parents_tenant_policy(db_path):
    S.STRICT.config.tenant_policies["acme"] = loads_policy(S.TENANT_POLICY, "acme.yaml")
    wire = ["wire", {"to": "mallory", "amount": 5}]
    record = await spawn_run(db_path, {"calls": [wire], "tenant": "other"}, tenant="acme")
    assert record.status == "succeeded", record.error
    [answer] = record.result
    assert answer["ok"] is False and "no-wires" in answer["error"]["message"], answer
    assert S.executed("wire") == []


async def test_a_child_of_an_unrestricted_tenant_is_judged_by_the_base_policy(db_path):
    # the control: acme's lockdown binds acme's trees only
    S.STRICT.config.tenant_policies["acme"] = loads_policy(S.TENANT_POLICY, "acme.yaml")
    wire = ["wire", {"to": "bob", "amount": 5}]
    record = await spawn_run(db_path, {"calls": [wire], "tenant": "other"}, tenant="beta")
    assert record.status == "succeeded", record.error
    assert record.result[0]["ok"] is True
    assert S.executed("wire") == [{"version": "2", "to": "bob", "amount": 5.0}]
