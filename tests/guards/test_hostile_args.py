"""Issue 13 §1: rules judge the arguments the tool will actually receive.

A hostile model proposes arguments that the tool layer coerces (`1.0` -> `1`, `"yes"` -> `True`,
`"5000"` -> `5000.0`), sends them as a JSON string, repeats a key, or sends something that is
not an object. Each attack runs through `Guards.tool` (and `ctx.tool` directly) on the real
runtime, against real tools writing to a real SQLite database; the tests look at the database,
not at what the guards say they did.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator

from tether import Tether
from tether.guards import (
    GuardConfig,
    Guards,
    action_digest,
    inbox,
    loads_policy,
    sign_decision,
)
from tether.tools import ToolRegistry, tool

from . import agents_guarded as A
from .e2e_support import run_proposals as run_calls

POLICY = """
name: bank
rules:
  - id: protect-admin
    tools: delete_user
    effect: deny
    args: {user_id: {in: [1]}}
  - id: no-hard-delete
    tools: delete_user
    effect: deny
    args: {hard: {equals: true}}
  - {id: deletions, tools: delete_user, effect: allow}
  - id: big-transfers
    tools: transfer
    effect: approve
    args: {amount: {min: 1000}}
  - {id: transfers, tools: transfer, effect: allow}
  - {id: tagging, tools: tag, effect: allow}
  - {id: counting, tools: count_to, effect: allow}
"""

STATE: dict[str, Any] = {}


def _db() -> sqlite3.Connection:
    return sqlite3.connect(STATE["bank"])


@tool(side_effect="destructive")
def delete_user(user_id: int, hard: bool = False) -> str:
    """Delete a user: soft (marks the row) unless `hard`."""
    with _db() as db:
        if hard:
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))
        else:
            db.execute("UPDATE users SET deleted = 1 WHERE id = ?", (user_id,))
    return f"deleted {user_id}"


@tool(side_effect="write")
def transfer(to: str, amount: float) -> str:
    """Pay `amount` to `to`."""
    with _db() as db:
        db.execute("INSERT INTO payments (recipient, amount) VALUES (?, ?)", (to, amount))
    return f"paid {amount} to {to}"


@tool(side_effect="write")
def tag(label: Annotated[str, AfterValidator(lambda s: s + "!")]) -> str:
    """A tool whose validation is not stable: validating its own output changes it again."""
    with _db() as db:
        db.execute("INSERT INTO payments (recipient, amount) VALUES (?, 0)", (label,))
    return label


VALIDATIONS: list[int] = []


def _counted(n: int) -> int:
    VALIDATIONS.append(n)
    return n


@tool(side_effect="write")
def count_to(n: Annotated[int, AfterValidator(_counted)]) -> int:
    """A tool whose every validation is counted (stable: the value is kept)."""
    with _db() as db:
        db.execute("INSERT INTO payments (recipient, amount) VALUES ('count', ?)", (n,))
    return n


REGISTRY = ToolRegistry([delete_user, transfer, tag, count_to])


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    path = tmp_path / "bank.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, deleted INT DEFAULT 0)")
        db.executemany("INSERT INTO users (id, name) VALUES (?, ?)",
                       [(1, "admin"), (2, "bob"), (3, "carol")])
        db.execute("CREATE TABLE payments (recipient TEXT, amount REAL)")
    STATE["bank"] = str(path)
    return path


def users(bank: Path) -> dict[int, int]:
    """id -> deleted flag of every remaining row."""
    with sqlite3.connect(bank) as db:
        return dict(db.execute("SELECT id, deleted FROM users").fetchall())


def payments(bank: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(bank) as db:
        return db.execute("SELECT recipient, amount FROM payments").fetchall()


def make_guards(approvers: Any = None) -> Guards:
    cfg = GuardConfig(policy=loads_policy(POLICY, "bank.yaml"), pii=False,
                      **({"approvers": approvers} if approvers is not None else {}))
    return Guards(cfg, tools=REGISTRY)


# ------------------------------------------------------------------ coerced values
ADMIN_IDS = [1.0, "1", " 1 ", "01", "+1", "1.0", True, 1.0000000000000001]


@pytest.mark.parametrize("user_id", ADMIN_IDS, ids=repr)
async def test_protected_admin_cannot_be_deleted_with_a_coerced_id(db_path, bank, user_id):
    run = await run_calls(db_path, make_guards(), [["delete_user", {"user_id": user_id}]])
    assert run.status == "succeeded", run.error
    [result] = run.result
    assert not result["ok"] and result["error"]["type"] == "policy_denied", result
    assert "protect-admin" in result["error"]["message"]
    assert users(bank) == {1: 0, 2: 0, 3: 0}


@pytest.mark.parametrize("hard", ["yes", "on", "true", "TRUE", "y", "1", 1, 1.0], ids=repr)
async def test_hard_delete_cannot_be_smuggled_as_a_string(db_path, bank, hard):
    run = await run_calls(db_path, make_guards(),
                          [["delete_user", {"user_id": 2, "hard": hard}]])
    [result] = run.result
    assert not result["ok"] and "no-hard-delete" in result["error"]["message"], result
    assert users(bank) == {1: 0, 2: 0, 3: 0}


async def test_an_allowed_soft_delete_still_runs_with_the_coerced_values(db_path, bank):
    run = await run_calls(db_path, make_guards(),
                          [["delete_user", {"user_id": "2", "hard": "no"}]])
    [result] = run.result
    assert result["ok"], result
    assert users(bank) == {1: 0, 2: 1, 3: 0}


@pytest.mark.parametrize("amount", ["5000", "5e3", " 5000 ", "5000.0", "1_000", 5000],
                         ids=repr)
async def test_a_big_transfer_as_a_string_needs_approval(db_path, bank, amount):
    run = await run_calls(db_path, make_guards(), [["transfer", {"to": "bob", "amount": amount}]])
    assert run.status == "waiting", (run.status, run.result)
    assert payments(bank) == []
    t = Tether(db_path)
    [pending] = inbox.list_pending(t.store)
    t.close()
    # the approvers see, and the digest covers, what the tool would receive
    assert pending.request.args == {"to": "bob", "amount": float(amount.replace("_", ""))
                                    if isinstance(amount, str) else float(amount)}
    # (and the request's own salt: test_approval_incarnations.py)
    assert pending.request.salt
    assert pending.request.digest == action_digest("transfer", pending.request.args,
                                                   pending.request.salt)


@pytest.mark.parametrize("amount", ["NaN", "nan", "inf", "-Infinity"], ids=repr)
async def test_non_finite_amounts_are_refused(db_path, bank, amount):
    run = await run_calls(db_path, make_guards(), [["transfer", {"to": "bob", "amount": amount}],
                                                   ["transfer", f'{{"to": "bob", "amount": '
                                                                f'{amount.strip(chr(34))}}}']])
    assert run.status == "succeeded", (run.status, run.reason)
    for result in run.result:
        assert not result["ok"] and result["error"]["type"] == "invalid_arguments", result
    assert payments(bank) == []


# ---------------------------------------------------------------- JSON text
@pytest.mark.parametrize("text", ['{"user_id": 1}', '{"user_id": 1.0}', ' {"user_id": "1"} ',
                                  '{"user\\u005fid": 1}', '\n{"user_id":\n 1e0}\n'], ids=repr)
async def test_arguments_as_a_json_string_are_judged_like_an_object(db_path, bank, text):
    run = await run_calls(db_path, make_guards(), [["delete_user", text]])
    [result] = run.result
    assert not result["ok"] and "protect-admin" in result["error"]["message"], result
    assert users(bank) == {1: 0, 2: 0, 3: 0}


async def test_a_big_transfer_as_a_json_string_needs_approval(db_path, bank):
    run = await run_calls(db_path, make_guards(),
                          [["transfer", '{"to": "bob", "amount": "5000"}']])
    assert run.status == "waiting" and payments(bank) == []


DUPLICATES = [
    '{"to": "alice", "amount": 5, "to": "mallory"}',
    '{"to": "alice", "to": "alice", "amount": 5}',
    '{"to": "alice", "amount": 5, "\\u0074o": "mallory"}',  # the same key, escaped
    '{"amount": 5000, "to": "alice", "amount": 5}',
    '{"to": "alice", "amount": 5, "meta": {"a": 1, "a": 2}}',
]


@pytest.mark.parametrize("text", DUPLICATES)
async def test_a_json_object_with_a_duplicate_key_is_refused(db_path, bank, text):
    run = await run_calls(db_path, make_guards(), [["transfer", text]])
    assert run.status == "succeeded", (run.status, run.reason)
    [result] = run.result
    assert not result["ok"] and result["error"]["type"] == "invalid_arguments", result
    assert "more than once" in result["error"]["message"]
    assert payments(bank) == []


@pytest.mark.parametrize("args", ['[{"to": "bob", "amount": 5}]', '"to=bob"', "5", "null",
                                  '{"to": "bob", "amount": 5', [["to", "bob"], ["amount", 5]],
                                  7, ["to", "bob"]], ids=repr)
async def test_arguments_that_are_not_an_object_are_refused(db_path, bank, args):
    run = await run_calls(db_path, make_guards(), [["transfer", args]])
    [result] = run.result
    assert not result["ok"] and result["error"]["type"] == "invalid_arguments", result
    assert payments(bank) == []


async def test_a_tool_whose_validation_is_not_stable_is_refused(db_path, bank):
    """The tool would re-validate the judged arguments into different ones: refused."""
    run = await run_calls(db_path, make_guards(), [["tag", {"label": "x"}]])
    [result] = run.result
    assert not result["ok"] and result["error"]["type"] == "invalid_arguments", result
    assert "validat" in result["error"]["message"]
    assert payments(bank) == []


async def test_the_tool_runs_on_the_judged_arguments_without_validating_them_again(db_path,
                                                                                   bank):
    """The gate validates twice (to judge, then the stability check) and hands on the second
    result as the tool's read-only `ValidatedArguments`: the runtime's check and the tool's
    run take them as they are, so the tool runs on exactly what was judged."""
    from tether.tools._validated import validated_by

    guards = make_guards()
    prepared = guards.gate.prepare(guards.config.policy, "count_to", {"n": "7"}, REGISTRY)
    assert prepared == {"n": 7} and validated_by(prepared, REGISTRY.get("count_to"))
    with pytest.raises(TypeError, match="read-only"):
        prepared["n"] = 8
    VALIDATIONS.clear()
    run = await run_calls(db_path, guards, [["count_to", {"n": " 9 "}]])
    [result] = run.result
    assert result["ok"] and result["output"] == 9, result
    # the gate's two, and the function's own parse (a field with a validator is not handed
    # over as plain JSON); the runtime's check and `Tool.invoke` validated again before
    assert VALIDATIONS[:2] == [9, 9] and set(VALIDATIONS) == {9} and len(VALIDATIONS) <= 3
    assert payments(bank) == [("count", 9.0)]


# ----------------------------------------------------------------- approvals
async def test_the_tool_receives_exactly_the_approved_arguments(db_path, bank, people):
    keys, reg = people
    guards = make_guards(reg)
    run = await run_calls(db_path, guards, [["transfer", '{"to": "bob", "amount": "5000"}']])
    assert run.status == "waiting"
    t = Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)
    [pending] = inbox.list_pending(t.store, reg)
    req = pending.request
    assert req.args == {"to": "bob", "amount": 5000.0}
    # a decision made over the raw proposal is for a different action
    raw = sign_decision(keys["alice"], req.id, "approve", "alice",
                        action_digest("transfer", {"to": "bob", "amount": "5000"}))
    with pytest.raises(Exception, match="different action"):
        inbox.decide(t, raw, reg)
    inbox.decide(t, sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg)
    done = await t.drive(run.id)
    t.close()
    assert done.status == "succeeded", done.error
    assert done.result[0]["ok"] is True
    assert payments(bank) == [("bob", 5000.0)]


# ------------------------------------------------------------------ direct calls
@pytest.mark.parametrize("user_id", [1.0, "1", True], ids=repr)
async def test_a_direct_call_is_judged_on_the_coerced_arguments_too(db_path, bank, user_id):
    run = await run_calls(db_path, make_guards(), ["delete_user", {"user_id": user_id}],
                          A.direct_call)
    assert run.status == "failed" and "protect-admin" in (run.error or ""), run
    assert users(bank) == {1: 0, 2: 0, 3: 0}


# ------------------------------------------------- the policy alone (no tool schema)
@pytest.fixture
def policy() -> Any:
    return loads_policy(POLICY, "bank.yaml")


@pytest.mark.parametrize("args", [{"user_id": "1"}, {"user_id": True}, {}, {"user_id": 1.0},
                                  {"user_id": " 1"}], ids=repr)
def test_a_deny_condition_that_cannot_be_evaluated_matches(policy, args):
    d = policy.decide("delete_user", args)
    assert (d.action, d.rule) == ("deny", "protect-admin"), d.explain()


@pytest.mark.parametrize("amount", ["5000", None, [5000], math.nan, {"v": 1}], ids=repr)
def test_an_approve_condition_that_cannot_be_evaluated_matches(policy, amount):
    d = policy.decide("transfer", {"to": "bob", "amount": amount})
    assert (d.action, d.rule) == ("approve", "big-transfers"), d.explain()
    assert "cannot be evaluated" in d.explain()


def test_an_allow_condition_that_cannot_be_evaluated_does_not_match() -> None:
    p = loads_policy("rules:\n  - {id: small, tools: pay, effect: allow, args: "
                     "{amount: {max: 100}}}\n", "p.yaml")
    for amount in ("5", None, math.nan, math.inf, True):
        assert p.decide("pay", {"amount": amount}).action == "deny", amount
    assert p.decide("pay", {"amount": 5}).action == "allow"


class _Float(float):
    pass


class _Int(int):
    pass


@pytest.mark.parametrize("args,where", [
    ({"a": 1, "b": "x", "c": None, "d": True, "e": 1.5, "f": 2**64 - 1, "g": -(2**63)}, None),
    ({"a": math.nan}, "a"),
    ({"a": -math.inf}, "a"),
    ({"a": _Float("nan")}, "a"),  # a float subclass: no shortcut past the check
    ({"a": 2**64}, "a"),
    ({"a": -(2**63) - 1}, "a"),
    ({"a": _Int(2**70)}, "a"),
    ({"x": [1, {"y": math.inf}]}, "x.1.y"),
    ({"x": {3: "v"}}, "x.3"),
    ({"x": (0, 1, [math.nan])}, "x.2.0"),
], ids=repr)
def test_values_canonical_json_would_change_are_found(args, where):
    from tether.guards._policygate import _not_canonical_json

    assert _not_canonical_json(args) == where
