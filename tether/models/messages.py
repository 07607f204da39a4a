"""Provider-neutral message, tool and response types.

Every provider module translates these to and from its wire format, so agents, the journal and the
validation loop only ever see one shape. All types are pydantic models that round-trip through JSON
unchanged: the runtime journals a `ModelResponse` as JSON and rebuilds it on replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]


class ToolCall(BaseModel):
    """A request from the model to run one tool; `arguments` is already parsed JSON."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    # The provider's raw argument text when it could not be parsed (even after repair); the
    # validation layer turns it into feedback for the model.
    raw_arguments: str | None = None


class Message(BaseModel):
    """One chat message: `tool_calls` only on assistant turns, `tool_call_id` only on tool ones."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(
        cls, content: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls(role="assistant", content=content, tool_calls=list(tool_calls or []))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)


class ToolDefinition(BaseModel):
    """What the model may call: the `parameters` JSON schema is the one `tether.tools` produces."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    """Token counts; never negative, since a negative count would refund a budget."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class ModelAttempt(BaseModel):
    """One try behind a response, listed by the retry and fallback wrappers: without it the
    journal shows only the answer, never that (and why) the primary failed first."""

    model_config = ConfigDict(frozen=True)

    model: str  # the name of the model tried (`Model.name`)
    error_type: str | None = None  # the exception's class; None for the try that answered
    error: str | None = None  # its message, redacted (no API keys) and cut to 500 characters
    duration_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class ModelResponse(BaseModel):
    """One completion. `cost_usd` is None when no price is known (a wrapper may fill it in)."""

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    # finite and non-negative: a NaN or negative cost would silently defeat every budget check
    cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    model: str = ""
    # Parsed structured output, filled in by the validation layer when an output schema was given.
    output: Any = None
    # Every try when a wrapper made more than one (the last is the one that answered); empty
    # for a call answered at the first try.
    # Left out when empty: a plain call's journal record neither grows nor changes.
    attempts: list[ModelAttempt] = Field(default_factory=list, exclude_if=lambda v: not v)

    def to_message(self) -> Message:
        """The assistant message to append to the history before sending tool results back."""
        return Message.assistant(self.text, self.tool_calls)


class StreamEvent(BaseModel):
    """One streamed increment; the last event carries the assembled `response`."""

    text_delta: str = ""
    response: ModelResponse | None = None


MessageLike = Message | dict[str, Any]
ToolLike = ToolDefinition | dict[str, Any]


def as_messages(messages: list[MessageLike] | tuple[MessageLike, ...]) -> list[Message]:
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]


def as_tools(tools: list[ToolLike] | tuple[ToolLike, ...] | None) -> list[ToolDefinition]:
    if not tools:
        return []
    out: list[ToolDefinition] = []
    for t in tools:
        if isinstance(t, ToolDefinition):
            out.append(t)
        elif isinstance(t, dict) and t.get("type") == "function" and "function" in t:
            out.append(ToolDefinition.model_validate(t["function"]))  # OpenAI-shaped dict
        else:
            out.append(ToolDefinition.model_validate(t))
    return out


def as_request(
    messages: Sequence[MessageLike], tools: Sequence[ToolLike] | None
) -> tuple[list[Message], list[ToolDefinition]]:
    """The messages and tools of a `Model.complete` call as the types providers work with.
    Every `complete` starts with it: callers, and wrappers passing on what they were given, may
    hand in dicts (or tuples) of the same shape."""
    return as_messages(list(messages)), as_tools(list(tools) if tools else None)


def request_hash(
    model: str,
    messages: list[Message],
    tools: list[ToolDefinition],
    output_schema: dict[str, Any] | None,
    params: dict[str, Any],
) -> str:
    """A stable digest of everything that determines a request (journaled for replay checks)."""
    payload = {
        "model": model,
        "messages": [m.model_dump(mode="json") for m in messages],
        "tools": [t.model_dump(mode="json") for t in tools],
        "output_schema": output_schema,
        "params": params,
    }
    blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()
