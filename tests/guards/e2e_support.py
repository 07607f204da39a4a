"""Shared pieces of the end-to-end guard tests (test_e2e_*.py, test_cli.py, test_usage.py): the
policy, the guards and Tether factories, the journal-only replay, the scripted-model helpers and
the thoughts of a model stuck in a loop.

Not a test module; the agents and tools the runs execute live in agents_guarded.py (runs refer to
them by module path), the `people` fixture in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether import Tether
from tether.guards import GuardConfig, Guards, KeyRegistry, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.runtime import Context, GroupCommitter

from . import agents_guarded as A

# Thoughts of a model stuck in a semantic loop: near-paraphrases, cosine > 0.95 with MiniLM
# (the detector's unit tests use the first six, the end-to-end loop test all of them).
STUCK = [
    "I need to find the weather in Paris, so I will search for it.",
    "I need to find the weather in Paris, so I will search for it now.",
    "I need to find the weather in Paris so I will search for it.",
    "I need to find the weather in Paris; I will search for it.",
    "I need to find the weather in Paris, so I shall search for it.",
    "I need to find the weather in Paris, so I will search for it again.",
    "I need to find the weather in Paris, so I will search for it once more.",
]

POLICY = r"""
name: e2e
honeypots: [shutdown, delete_all]
rules:
  - {id: search, tools: search, effect: allow}
  - {id: crm, tools: crm_lookup, effect: allow}
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
    pii: [email]
  - {id: refunds, tools: refund, effect: approve}
  - {id: transfers, tools: transfer, effect: approve, critical: true}
"""

VAULT_KEY = os.urandom(32)
# Every approval decision must be signed by a registered approver: these two sign the decisions
# of the tests that do not bring their own (`people`).
APPROVER_KEYS = {name: Ed25519PrivateKey.generate() for name in ("carol", "dave")}
APPROVERS = KeyRegistry()
for _name, _key in APPROVER_KEYS.items():
    APPROVERS.register(_name, _key.public_key())

def make_guards(embedder: Any, approvers: KeyRegistry | None = None, **kw: Any) -> Guards:
    cfg = GuardConfig(policy=loads_policy(POLICY, "e2e.yaml"), embedder=embedder,
                      vault_key=VAULT_KEY, approvers=approvers or APPROVERS, **kw)
    return Guards(cfg, tools=A.registry)


def open_tether(db_path: str, guards: Guards, **kw: Any) -> Tether:
    return Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0, **kw)


async def run_proposals(db_path: str, guards: Guards, calls: Any, agent: Any = A.propose) -> Any:
    """One run of `agent` (by default: each `[tool, arguments]` of `calls` proposed through
    `guards`) on a fresh Tether over `db_path`; the run's record."""
    A.STATE["guards"] = guards
    t = open_tether(db_path, guards)
    try:
        return await t.run(agent, calls)
    finally:
        t.close()


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


def sent_to_model(model: ScriptedModel) -> str:
    """Everything the model was sent (message contents and tool-call arguments), so a test can
    prove that something, a secret or a placeholder, never reached it."""
    parts: list[str] = []
    for call in model.calls:
        for m in call.messages:
            parts.append(m.content or "")
            parts.extend(json.dumps(tc.arguments) for tc in m.tool_calls or [])
    return "\n".join(parts)


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
