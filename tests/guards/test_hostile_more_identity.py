"""Tool identity: the guards judge the tool that runs, not another one of the same name.

The policy names tools, not versions, and the guards read a tool's metadata (side effect,
approval requirement) from their registry. Before: a direct `ctx.tool` call was judged on the
*newest* version in the guards' registry whatever it ran, so `ctx.tool(reg, "purge",
version="1")` ran the destructive version 1 under a read-only policy (version 2 is a dry run),
`wire` version 1 — which requires a signed approval — ran without one, another registry's
destructive `lookup` passed as the guards' harmless one, and with `Guards(tools=None)` a tool
requiring approval ran on a bare `allow`. A `ToolVerdict` built by agent code cleared a honeypot,
and an approval given for one version of a tool ran the version deployed while the run waited.
Every run is real (SQLite journal, real tools); `EXECUTED` says what really ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tether import Tether
from tether.guards import inbox, sign_decision
from tether.tools import ToolRegistry, tool

from . import hostile_more_support as S


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    S.EXECUTED.clear()
    yield
    S.EXECUTED.clear()


async def run(db_path: str, guards: Any, agent: Any, inp: Any) -> Any:
    S.STATE["guards"] = guards
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        return await t.run(agent, inp)
    finally:
        t.close()


# ---------------------------------------------------------- direct calls, pinned versions
async def test_an_older_destructive_version_is_judged_as_itself(db_path):
    record = await run(db_path, S.make_guards(S.READ_ONLY), S.call_direct,
                       {"tool": "purge", "version": "1", "args": {"table": "users"}})
    assert record.status == "failed"
    assert "read_only" in record.error and "destructive" in record.error, record.error
    assert S.executed("purge") == []


async def test_the_newest_version_still_runs_under_the_read_only_policy(db_path):
    # the control: version 2 (read) is what the read-only policy allows
    record = await run(db_path, S.make_guards(S.READ_ONLY), S.call_direct,
                       {"tool": "purge", "version": "2", "args": {"table": "users"}})
    assert record.status == "succeeded", record.error
    assert S.executed("purge") == [{"version": "2", "table": "users"}]


async def test_a_version_that_requires_approval_is_not_run_on_an_allow(db_path):
    record = await run(db_path, S.make_guards(), S.call_direct,
                       {"tool": "wire", "version": "1", "args": {"to": "mallory", "amount": 9}})
    assert record.status == "failed"
    assert "approve required" in record.error, record.error
    assert S.executed("wire") == []


async def test_a_same_named_tool_of_another_registry_is_judged_as_unknown(db_path):
    # `OTHER`'s `lookup` is destructive; the guards' registry has a read-only `lookup` 1
    record = await run(db_path, S.make_guards(S.READ_ONLY), S.call_direct,
                       {"tool": "lookup", "registry": "other", "args": {"q": "users"}})
    assert record.status == "failed"
    assert "read_only" in record.error and "unknown" in record.error, record.error
    assert S.EXECUTED == []


async def test_the_guards_own_lookup_still_runs_directly(db_path):
    record = await run(db_path, S.make_guards(S.READ_ONLY), S.call_direct,
                       {"tool": "lookup", "args": {"q": "users"}})
    assert record.status == "succeeded", record.error
    assert S.executed("lookup") == [{"q": "users"}]


async def test_without_a_registry_the_tools_own_approval_requirement_holds(db_path):
    record = await run(db_path, S.make_guards(registry=None), S.call_direct,
                       {"tool": "wire", "version": "1", "args": {"to": "mallory", "amount": 9}})
    assert record.status == "failed"
    assert "approve required" in record.error, record.error
    assert S.executed("wire") == []


# ------------------------------------------------------------------------ forged verdicts
@pytest.mark.parametrize("name, args", [("wipe", {}), ("purge", {"table": "users"})])
async def test_a_verdict_forged_by_agent_code_clears_nothing(db_path, name, args):
    # `wipe` is a honeypot, `purge` has no rule: both must be refused as direct calls
    record = await run(db_path, S.make_guards(), S.forge_verdict, {"tool": name, "args": args})
    assert record.status == "failed"
    assert "ActionDenied" in record.error, record.error
    assert S.EXECUTED == []
    t = Tether(db_path)
    started = [e for e in t.events(record.id) if e.kind == "step_started"]
    t.close()
    # journaled as what it was: a direct call the policy refused, not one the gateway cleared
    assert [e.data["meta"]["policy"]["rule"] for e in started] != ["forged"]


async def test_the_gateway_still_clears_its_own_calls(db_path):
    record = await run(db_path, S.make_guards(), S.propose, [["lookup", {"q": "users"}]])
    assert record.status == "succeeded", record.error
    assert record.result[0]["ok"] is True
    assert S.executed("lookup") == [{"q": "users"}]


# --------------------------------------------------------------- approvals and versions
PAID: list[str] = []


@tool(name="pay", version="1", side_effect="write")
def pay_v1(to: str, amount: float) -> str:
    """Pay `amount` to `to` from the operating account."""
    PAID.append(f"v1:{to}:{amount}")
    return "paid"


@tool(name="pay", version="2", side_effect="destructive")
def pay_v2(to: str, amount: float) -> str:
    """Pay `amount` to `to`, closing the account afterwards (another tool, same name)."""
    PAID.append(f"v2:{to}:{amount}")
    return "paid and closed"


PAY_POLICY = """
name: pay
rules:
  - {id: payments, tools: pay, effect: approve}
"""


async def test_an_approval_for_one_version_does_not_run_another(db_path, people):
    keys, approvers = people
    PAID.clear()
    registry = ToolRegistry([pay_v1])
    guards = S.make_guards(PAY_POLICY, registry=registry, approvers=approvers)
    S.STATE["registry"] = registry
    record = await run(db_path, guards, S.propose_with,
                       {"calls": [["pay", {"to": "bob", "amount": 5}]]})
    assert record.status == "waiting"
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        [pending] = inbox.list_pending(t.store, approvers)
        request = pending.request
        inbox.decide(t, sign_decision(keys["alice"], request.id, "approve", "alice",
                                      request.digest, "pay bob"), approvers)
        registry.register(pay_v2)  # deployed while the run waited: the newest `pay` now
        done = await t.drive(record.id)
    finally:
        t.close()
    assert done.status == "succeeded", done.error
    [answer] = done.result
    assert answer["ok"] is False and answer["error"]["type"] == "approval_denied"
    assert "version '1'" in answer["error"]["message"], answer
    assert PAID == []


async def test_an_approved_call_runs_the_version_that_was_approved(db_path, people):
    keys, approvers = people
    PAID.clear()
    registry = ToolRegistry([pay_v1])
    guards = S.make_guards(PAY_POLICY, registry=registry, approvers=approvers)
    S.STATE["registry"] = registry
    record = await run(db_path, guards, S.propose_with,
                       {"calls": [["pay", {"to": "bob", "amount": 5}]]})
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    try:
        [pending] = inbox.list_pending(t.store, approvers)
        request = pending.request
        inbox.decide(t, sign_decision(keys["alice"], request.id, "approve", "alice",
                                      request.digest, "pay bob"), approvers)
        done = await t.drive(record.id)
    finally:
        t.close()
    assert done.status == "succeeded", done.error
    assert done.result[0]["ok"] is True
    assert PAID == ["v1:bob:5.0"]
