"""How the ReAct loop reads a model reply: tool calls, a final answer, or neither (the parsing
half of ``tether/agents/react.py``), in either prompt mode.

The model call itself goes through :class:`~tether.agents.governed.Governed`, so under guards a
reply is already masked and judged before it is parsed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tether.agents.governed import Governed
from tether.models import Message, Model, ToolCall, ToolDefinition
from tether.runtime.effects.model_verdict import rejected_replies

TRUNCATED = (
    "Your reply was cut off because it was too long. Reply again, shorter: one tool call with "
    "short arguments, or a brief final answer."
)


@dataclass
class Plan:
    """One model reply, read: the calls to make, or the answer, or what to tell the model when it
    gave neither (a nudge costs a step instead of ending the run on a bad reply)."""

    thought: str
    calls: list[ToolCall]
    answer: str | None
    assistant: Message
    #: what to tell the model when the reply is neither calls nor an answer
    nudge: str = "Your reply was empty. Call a tool or give the final answer."
    #: replies validation refused (and asked again) before this one: {"reply", "errors"}
    rejected: list[dict[str, Any]] = field(default_factory=list)


async def plan_step(
    gov: Governed,
    model: Model,
    messages: list[Message],
    definitions: list[ToolDefinition],
    mode: str,
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    step: int,
    pinned: int,
) -> Plan:
    """Ask the model for the next step and read its reply; a reply cut off by the length limit
    is not taken for an answer (often it is a tool call that never closed)."""
    if mode == "json":
        response = await gov.model(model, messages, output_schema=schema, pinned=pinned,
                                   **params)
        data = response.output if isinstance(response.output, dict) else {}
        thought = str(data.get("thought") or "")
        calls: list[ToolCall] = []
        for i, c in enumerate(data.get("tool_calls") or []):
            if isinstance(c, dict):
                args = c.get("arguments")
                calls.append(ToolCall(id=f"step{step}_{i}", name=str(c.get("name", "")),
                                      arguments=args if isinstance(args, dict) else {}))
        answer = data.get("final_answer")
        return Plan(thought, calls, None if calls else str(answer or ""),
                    Message.assistant(response.text or json.dumps(data)),
                    rejected=rejected_replies(response))
    response = await gov.model(model, messages, tools=definitions, pinned=pinned, **params)
    calls = list(response.tool_calls)
    refused = rejected_replies(response)
    if calls:
        return Plan((response.text or "").strip(), calls, None, response.to_message(),
                    rejected=refused)
    if response.finish_reason == "length":
        # cut off mid-reply (often a tool call that never closed): not an answer
        return Plan("", [], None, response.to_message(), TRUNCATED, rejected=refused)
    return Plan("", [], (response.text or "").strip(), response.to_message(), rejected=refused)
