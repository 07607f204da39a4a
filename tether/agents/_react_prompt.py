"""What the ReAct model is shown: the system prompt, the tools, few-shot episodes and the
JSON-mode reply schema (the prompt half of ``tether/agents/react.py``).

Both prompt modes are rendered here so the opening conversation and the observations the loop
appends later use one wording: ``native`` passes the tools as definitions, ``json`` lists them in
the prompt and constrains each reply with :func:`step_schema`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tether.models import Message, ToolCall, ToolDefinition

MAX_PARALLEL_CALLS = 4

SYSTEM_PROMPT = """\
You solve the user's task step by step, using tools.
At each step, think briefly about what you still need, then either call tools or give the final \
answer.
- Use tools to get facts and to calculate; never guess a number a tool can give you.
- When several calls do not depend on each other, make them in the same step.
- A tool result that starts with ERROR explains what went wrong: fix the call or try another way.
- Give the final answer only when you have everything you need, and base it on the tool results."""

NATIVE_FORMAT = """\
Before calling tools, you may state your reasoning in one or two sentences.
When you are done, reply with the final answer as plain text and no tool call."""

JSON_FORMAT = """\
Reply with exactly one JSON object per step, in one of these two forms:
{"thought": "<what you need next and why>", "tool_calls": [{"name": "<tool>", "arguments": {...}}]}
{"thought": "<why you can answer now>", "final_answer": "<the answer for the user>"}
Tool results come back in the next message as "Observations"."""


@dataclass(frozen=True)
class ExampleStep:
    """One step of a few-shot episode: a thought, the calls made and what they returned."""

    thought: str
    calls: Sequence[tuple[str, dict[str, Any]]]
    observations: Sequence[str]


@dataclass(frozen=True)
class ReActExample:
    """A complete episode shown to the model before the real goal."""

    goal: str
    steps: Sequence[ExampleStep]
    answer: str
    answer_thought: str = "I have everything I need."


def inline_refs(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Replace local ``$ref``s by their ``$defs`` so the schema can be nested in another one.

    Recursive definitions are cut at depth 8 (``{}`` accepts anything); tool argument validation
    still checks the real schema.
    """
    if defs is None and isinstance(schema, dict):
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        schema = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    defs = defs or {}
    if isinstance(schema, list):
        return [inline_refs(s, defs, depth) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
        if depth >= 8:
            return {}
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        merged = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
        return inline_refs(merged, defs, depth + 1)
    return {k: inline_refs(v, defs, depth) for k, v in schema.items()}


def step_schema(definitions: Sequence[ToolDefinition]) -> dict[str, Any]:
    """The JSON-mode reply schema: a thought plus tool calls (one variant per tool) or an answer."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": d.name}, "arguments": inline_refs(d.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for d in definitions
    ]
    answer = {
        "type": "object",
        "properties": {"thought": {"type": "string"}, "final_answer": {"type": "string"}},
        "required": ["thought", "final_answer"],
        "additionalProperties": False,
    }
    if not variants:
        return answer
    act = {
        "type": "object",
        "properties": {
            "thought": {"type": "string"},
            "tool_calls": {
                "type": "array",
                "items": variants[0] if len(variants) == 1 else {"anyOf": variants},
                "minItems": 1,
                "maxItems": MAX_PARALLEL_CALLS,
            },
        },
        "required": ["thought", "tool_calls"],
        "additionalProperties": False,
    }
    return {"anyOf": [act, answer]}


def _tool_list(definitions: Sequence[ToolDefinition]) -> str:
    lines = ["Tools:"]
    for d in definitions:
        lines.append(
            f"- {d.name}: {d.description or '(no description)'}\n  arguments: "
            + json.dumps(inline_refs(d.parameters), separators=(",", ":"))
        )
    return "\n".join(lines)


def observations_text(calls: Sequence[ToolCall], observations: Sequence[str]) -> str:
    """JSON mode's tool results, one user message for all the calls of a step (there are no tool
    messages without native tool calling)."""
    lines = ["Observations:"]
    for i, (c, obs) in enumerate(zip(calls, observations, strict=True), start=1):
        lines.append(f"{i}. {c.name}({json.dumps(c.arguments)}) -> {obs}")
    return "\n".join(lines)


def example_messages(examples: Sequence[ReActExample], mode: str) -> list[Message]:
    """Render few-shot episodes as conversation turns in the protocol of ``mode``."""
    out: list[Message] = []
    for n, ex in enumerate(examples, start=1):
        out.append(Message.user(ex.goal))
        for s, step in enumerate(ex.steps, start=1):
            calls = [
                ToolCall(id=f"example{n}_{s}_{i}", name=name, arguments=dict(args))
                for i, (name, args) in enumerate(step.calls)
            ]
            if mode == "json":
                payload = {"thought": step.thought,
                           "tool_calls": [{"name": c.name, "arguments": c.arguments}
                                          for c in calls]}
                out.append(Message.assistant(json.dumps(payload)))
                out.append(Message.user(observations_text(calls, list(step.observations))))
            else:
                out.append(Message.assistant(step.thought or None, calls))
                for c, obs in zip(calls, step.observations, strict=True):
                    out.append(Message.tool(c.id, obs, name=c.name))
        if mode == "json":
            out.append(Message.assistant(json.dumps(
                {"thought": ex.answer_thought, "final_answer": ex.answer})))
        else:
            out.append(Message.assistant(ex.answer))
    return out


def build_prompt(
    goal: str,
    definitions: Sequence[ToolDefinition],
    *,
    mode: str,
    system: str | None = None,
    examples: Sequence[ReActExample] = (),
) -> list[Message]:
    """The opening conversation: system prompt, few-shot episodes, then the goal."""
    parts = [system or SYSTEM_PROMPT]
    if mode == "json":
        parts += [_tool_list(definitions), JSON_FORMAT]
    else:
        parts.append(NATIVE_FORMAT)
    if examples:
        parts.append(
            "The first conversation(s) below are worked examples of the method; then comes the "
            "real task. Use only the tools listed for you, and never reuse numbers from the "
            "examples: get the figures for the real task from the tools."
        )
    return [
        Message.system("\n\n".join(parts)),
        *example_messages(examples, mode),
        Message.user(goal),
    ]
