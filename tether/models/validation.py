"""Model output is never trusted: parse leniently, validate against the schema, feed errors back.

* `parse_json` accepts strict JSON; otherwise it strips Markdown fences and asks `json_repair`
  to fix trailing commas, single quotes, unclosed brackets and prose around the object. A repair
  is used only when it is safe: the text must contain a JSON object/array opener, the repaired
  value must be an object or array, and, when a schema is given, it must validate.
* `check_response` lists everything wrong with a response (unknown tool, arguments not matching the
  tool's schema, structured output not matching the output schema, no tool call when one was
  required).
* `complete_validated` runs the feedback loop: an invalid response is shown back to the model with
  the errors, at most `max_feedback` times, then `ModelOutputError` carries the last output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import json_repair
import jsonschema
import orjson

from tether.models._protocol import Model, ToolChoice
from tether.models.errors import ModelOutputError
from tether.models.messages import (
    Message,
    MessageLike,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    ToolLike,
    as_request,
)

# json_repair is super-linear: ~0.6 s at 100 KB, hours at 10 MB. Longer text is parsed strictly
# only (a hostile provider must not be able to stall a worker with one huge argument string).
MAX_REPAIR_CHARS = 64 * 1024
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


class JSONParseError(ValueError):
    """Text that is not JSON and cannot safely be repaired into it."""


@dataclass(frozen=True)
class ParsedJSON:
    value: Any
    repaired: bool


def _validator(schema: dict[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Human (and model) readable schema violations, with the JSON path of each."""
    errors = []
    for err in sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        errors.append(f"at ${path}: {err.message}")
    return errors


def parse_json(text: str, schema: dict[str, Any] | None = None) -> ParsedJSON:
    stripped = text.strip()
    try:
        return ParsedJSON(orjson.loads(stripped), repaired=False)
    except orjson.JSONDecodeError:
        pass
    fenced = _FENCE.search(stripped)
    candidate = fenced.group(1).strip() if fenced else stripped
    if candidate is not stripped:
        try:
            return ParsedJSON(orjson.loads(candidate), repaired=True)
        except orjson.JSONDecodeError:
            pass
    if "{" not in candidate and "[" not in candidate:
        raise JSONParseError(f"not JSON: {_snippet(text)}")
    if len(candidate) > MAX_REPAIR_CHARS:
        raise JSONParseError(
            f"not valid JSON, and at {len(candidate)} characters too long to repair "
            f"(limit {MAX_REPAIR_CHARS}): {_snippet(text)}"
        )
    try:
        value = json_repair.loads(candidate)
    except Exception as exc:  # json_repair is best-effort; any failure means "not repairable"
        raise JSONParseError(f"not JSON and not repairable: {_snippet(text)}") from exc
    if not isinstance(value, dict | list) or (value in ({}, []) and len(candidate) > 2):
        raise JSONParseError(f"not JSON and not safely repairable: {_snippet(text)}")
    if schema is not None and schema_errors(value, schema):
        raise JSONParseError(f"repaired JSON does not match the schema: {_snippet(text)}")
    return ParsedJSON(value, repaired=True)


def parse_tool_arguments(raw: str | dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Provider helper: (arguments, raw text if unparseable) for a tool call's argument string."""
    if raw is None or raw == "":
        return {}, None
    if isinstance(raw, dict):
        return raw, None
    try:
        value = parse_json(raw).value
    except JSONParseError:
        return {}, raw
    if not isinstance(value, dict):
        return {}, raw
    return value, None


def _snippet(text: str | None, n: int = 200) -> str:
    if text is None:
        return "<none>"
    return repr(text if len(text) <= n else text[:n] + "...")


def check_tool_call(call: ToolCall, tools: dict[str, ToolDefinition]) -> list[str]:
    tool = tools.get(call.name)
    if tool is None:
        names = ", ".join(sorted(tools)) or "(none)"
        return [f"tool call {call.id}: unknown tool {call.name!r}; available tools: {names}"]
    if call.raw_arguments is not None:
        return [
            f"tool call {call.id} ({call.name}): arguments are not valid JSON: "
            f"{_snippet(call.raw_arguments)}"
        ]
    return [
        f"tool call {call.id} ({call.name}): arguments {e}"
        for e in schema_errors(call.arguments, tool.parameters)
    ]


def check_response(
    response: ModelResponse,
    *,
    tools: list[ToolDefinition],
    output_schema: dict[str, Any] | None,
    tool_choice: ToolChoice | None = None,
) -> tuple[ModelResponse, list[str]]:
    """(response with `output` filled in when valid, list of errors)."""
    errors: list[str] = []
    by_name = {t.name: t for t in tools}
    for call in response.tool_calls:
        errors.extend(check_tool_call(call, by_name))
    if not response.tool_calls:
        if tool_choice == "required" or (tool_choice not in (None, "auto", "none") and tools):
            errors.append("a tool call was required but the reply contains none")
        elif output_schema is not None:
            if not response.text:
                errors.append("the reply is empty; a JSON value matching the schema was required")
            else:
                try:
                    parsed = parse_json(response.text, output_schema)
                except JSONParseError as exc:
                    errors.append(str(exc))
                else:
                    errs = schema_errors(parsed.value, output_schema)
                    if errs:
                        errors.extend(f"output {e}" for e in errs)
                    else:
                        response = response.model_copy(update={"output": parsed.value})
    return response, errors


def raw_output(response: ModelResponse) -> str:
    """The model's output as text, for error messages and feedback."""
    if response.tool_calls:
        calls = [
            {"name": c.name, "arguments": c.raw_arguments if c.raw_arguments else c.arguments}
            for c in response.tool_calls
        ]
        return json.dumps({"text": response.text, "tool_calls": calls}, ensure_ascii=False)
    return response.text or ""


def feedback_messages(response: ModelResponse, errors: list[str]) -> list[Message]:
    """What to append to the conversation so the model can correct itself."""
    text = (
        "Your previous reply was invalid:\n- "
        + "\n- ".join(errors)
        + "\nReply again, following the schema exactly."
    )
    if response.tool_calls:
        # Every tool call needs an answer, or providers reject the next request.
        out = [response.to_message()]
        for call in response.tool_calls:
            out.append(Message.tool(call.id, "Not executed. " + text, name=call.name))
        return out
    return [Message.assistant(response.text or ""), Message.user(text)]


CompleteFn = Callable[
    [list[Message], list[ToolDefinition], "dict[str, Any] | None", "ToolChoice | None"],
    Awaitable[ModelResponse],
]


async def complete_validated(
    complete: CompleteFn,
    messages: list[Message],
    *,
    tools: list[ToolDefinition],
    output_schema: dict[str, Any] | None,
    tool_choice: ToolChoice | None = None,
    max_feedback: int = 2,
    model_name: str | None = None,
) -> ModelResponse:
    """Call, check, and on errors call again with feedback, at most `max_feedback` extra times.

    `complete(messages, tools, output_schema, tool_choice)` performs one model call; passing a
    function (not a Model) lets the runtime journal every attempt as its own step.
    """
    history = list(messages)
    all_errors: list[str] = []
    for attempt in range(max_feedback + 1):
        response = await complete(history, tools, output_schema, tool_choice)
        checked, errors = check_response(
            response, tools=tools, output_schema=output_schema, tool_choice=tool_choice
        )
        if not errors:
            return checked
        all_errors = errors
        if attempt < max_feedback:
            history = history + feedback_messages(response, errors)
    last = raw_output(response)
    raise ModelOutputError(
        f"model output still invalid after {max_feedback + 1} attempt(s): "
        + "; ".join(all_errors)
        + f". Last output: {_snippet(last, 500)}",
        last_output=last,
        errors=all_errors,
        attempts=max_feedback + 1,
        model=model_name or response.model,
    )


class ValidatingModel(Model):
    """Wraps a model with the validate/repair/feedback loop (standalone use, outside `ctx`)."""

    def __init__(self, wrapped: Model, *, max_feedback: int = 2) -> None:
        self.wrapped = wrapped
        self.max_feedback = max_feedback
        self.name = wrapped.name

    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        msgs, tls = as_request(messages, tools)

        async def one(
            history: list[Message],
            defs: list[ToolDefinition],
            schema: dict[str, Any] | None,
            choice: ToolChoice | None,
        ) -> ModelResponse:
            return await self.wrapped.complete(
                history, tools=defs, output_schema=schema, tool_choice=choice, **params
            )

        return await complete_validated(
            one,
            msgs,
            tools=tls,
            output_schema=output_schema,
            tool_choice=tool_choice,
            max_feedback=self.max_feedback,
            model_name=self.name,
        )

    async def aclose(self) -> None:
        await self.wrapped.aclose()
