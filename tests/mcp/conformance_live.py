"""The conformance suite's tools that need the live MCP request (log and progress notifications,
sampling, elicitation, multi-round-trip input, SSE stream control): written with the SDK's
decorator on the server's SDK object, which hands them the request's `Context`; Tether still
calls each as a journaled run while its request is open. `CONTEXT_TOOLS` lists them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field

# -- tools that need the live request ---------------------------------------------------------


async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three info log notifications while it runs (tools-call-with-logging)."""
    for i, message in enumerate(("Tool execution started", "Tool processing data",
                                 "Tool execution completed")):
        if i:
            await asyncio.sleep(0.05)
        await ctx.log("info", message)
    return "Tool with logging executed successfully"


async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50, 100 of 100 against the request's token and answers the token
    (tools-call-with-progress)."""
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        if step < 100:
            await asyncio.sleep(0.05)
    meta = ctx.request_context.meta if ctx.request_context else None
    return str((meta or {}).get("progress_token", 0))


async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's model to complete `prompt` (tools-call-sampling)."""
    result = await ctx.session.create_message(  # pyright: ignore[reportDeprecated]
        messages=[types.SamplingMessage(role="user",
                                        content=types.TextContent(type="text", text=prompt))],
        max_tokens=100, related_request_id=ctx.request_id)
    text = result.content.text if result.content.type == "text" else "No response"
    return f"LLM response: {text}"


class _Answer(BaseModel):
    response: str = Field(description="User's response")


async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user `message` (tools-call-elicitation)."""
    answer = await ctx.elicit(message=message, schema=_Answer)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"User response: action={answer.action}, content={content}"


class _Defaults(BaseModel):
    """One field of each primitive type, each with a default (SEP-1034)."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(default="active", description="User status",
                        json_schema_extra={"enum": ["active", "inactive", "pending"]})
    verified: bool = Field(default=True, description="Verification status")


async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicits a form whose fields all carry defaults (elicitation-sep1034-defaults)."""
    answer = await ctx.elicit(message="Please provide user information", schema=_Defaults)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation result: action={answer.action}, content={content}"


def _choices(*pairs: tuple[str, str]) -> list[Any]:
    return [{"const": value, "title": title} for value, title in pairs]


class _Enums(BaseModel):
    """The five enum shapes of SEP-1330."""

    untitledSingle: str = Field(description="Simple enum without titles",
                                json_schema_extra={"enum": ["active", "inactive", "pending"]})
    titledSingle: str = Field(description="Enum with titled options (oneOf)",
                              json_schema_extra={"oneOf": _choices(
                                  ("low", "Low Priority"), ("medium", "Medium Priority"),
                                  ("high", "High Priority"))})
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}})
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={"items": {"anyOf": _choices(
            ("feature", "New Feature"), ("bug", "Bug Fix"), ("docs", "Documentation"))}})
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={"enum": ["small", "medium", "large"],
                           "enumNames": ["Small Size", "Medium Size", "Large Size"]})


async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicits a form using every enum shape (elicitation-sep1330-enums)."""
    answer = await ctx.elicit(message="Please select values using different enum schema types",
                              schema=_Enums)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation completed: action={answer.action}, content={content}"


async def test_reconnection(ctx: Context) -> str:
    """Closes its SSE stream mid-call; the client reconnects for the result (SEP-1699)."""
    await ctx.log("info", "Before disconnect")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.2)
    await ctx.log("info", "After reconnect")
    return "Reconnection test completed"


async def test_missing_capability(ctx: Context) -> str:
    """Needs the client's sampling capability and says so with a protocol error."""
    caps = ctx.session.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                       message="This tool requires the client 'sampling' capability",
                       data={"requiredCapabilities": {"sampling": {}}})
    return "Client declared sampling capability; proceeding."


# -- multi-round-trip input (SEP-2322): the tool answers InputRequiredResult until it has input --

_NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_OK = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def _ask(message: str, schema: dict[str, Any] = _NAME) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(
        message=message, requested_schema=schema))


def _sample(text: str, max_tokens: int = 100) -> types.CreateMessageRequest:
    return types.CreateMessageRequest(params=types.CreateMessageRequestParams(
        messages=[types.SamplingMessage(role="user",
                                        content=types.TextContent(type="text", text=text))],
        max_tokens=max_tokens))


def _field(answer: Any, key: str) -> Any:
    if isinstance(answer, types.ElicitResult) and answer.content:
        return answer.content.get(key)
    return None


async def test_input_required_result_elicitation(ctx: Context) -> str | types.InputRequiredResult:
    """Asks for a name through one elicitation round trip."""
    answers = ctx.input_responses or {}
    if "user_name" in answers:
        return f"Hello, {_field(answers['user_name'], 'name') or 'stranger'}!"
    return types.InputRequiredResult(input_requests={"user_name": _ask("What is your name?")})


async def test_input_required_result_sampling(ctx: Context) -> str | types.InputRequiredResult:
    """Asks the client's model one question through a sampling round trip."""
    answers = ctx.input_responses or {}
    if "capital_question" in answers:
        got = answers["capital_question"]
        text = (got.content.text if isinstance(got, types.CreateMessageResult)
                and got.content.type == "text" else "?")
        return f"Model said: {text}"
    return types.InputRequiredResult(
        input_requests={"capital_question": _sample("What is the capital of France?")})


async def test_input_required_result_list_roots(ctx: Context) -> str | types.InputRequiredResult:
    """Asks for the client's roots through a roots/list round trip."""
    answers = ctx.input_responses or {}
    if "client_roots" in answers:
        got = answers["client_roots"]
        count = len(got.roots) if isinstance(got, types.ListRootsResult) else 0
        return f"Client exposed {count} root(s)."
    return types.InputRequiredResult(input_requests={"client_roots": types.ListRootsRequest()})


async def test_input_required_result_request_state(ctx: Context) -> str | types.InputRequiredResult:
    """Round-trips an opaque requestState alongside the input."""
    answers = ctx.input_responses or {}
    if "confirm" in answers and ctx.request_state == "request-state-nonce":
        return "state-ok: confirmation received"
    return types.InputRequiredResult(input_requests={"confirm": _ask("Please confirm", _OK)},
                                     request_state="request-state-nonce")


async def test_input_required_result_multiple_inputs(
        ctx: Context) -> str | types.InputRequiredResult:
    """Asks for an elicitation, a sampling and the roots in one round trip."""
    answers = ctx.input_responses or {}
    if {"user_name", "greeting", "client_roots"} <= answers.keys():
        return "All inputs received."
    return types.InputRequiredResult(
        input_requests={"user_name": _ask("What is your name?"),
                        "greeting": _sample("Generate a greeting", 50),
                        "client_roots": types.ListRootsRequest()},
        request_state="multiple-inputs")


async def test_input_required_result_multi_round(ctx: Context) -> str | types.InputRequiredResult:
    """Three rounds: a name, then a colour, then the answer; the state says which round."""
    state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
    answers = ctx.input_responses or {}
    if state["round"] == 1 and "step1" in answers:
        color = {"type": "object", "properties": {"color": {"type": "string"}},
                 "required": ["color"]}
        return types.InputRequiredResult(
            input_requests={"step2": _ask("Step 2: What is your favorite color?", color)},
            request_state=json.dumps({"round": 2, "name": _field(answers["step1"], "name")}))
    if state["round"] == 2 and "step2" in answers:
        return f"{state.get('name')} likes {_field(answers['step2'], 'color')}."
    return types.InputRequiredResult(  # first round, or an answer out of order: start over
        input_requests={"step1": _ask("Step 1: What is your name?")},
        request_state=json.dumps({"round": 1}))


async def test_input_required_result_tampered_state(
        ctx: Context) -> str | types.InputRequiredResult:
    """Sets a requestState; the SDK's request-state boundary must refuse a tampered echo."""
    if ctx.request_state is None:
        return types.InputRequiredResult(input_requests={"confirm": _ask("Please confirm", _OK)},
                                         request_state="round-1")
    return f"state-ok: {ctx.request_state}"


async def test_input_required_result_capabilities(ctx: Context) -> types.InputRequiredResult:
    """Asks only for the kinds of input the client declared it can give."""
    caps = ctx.client_capabilities
    wanted: dict[str, types.InputRequest] = {}
    if caps is None or caps.sampling is not None:
        wanted["sample"] = _sample("Say hello", 50)
    if caps is None or caps.elicitation is not None:
        wanted["ask"] = _ask("What is your name?")
    return types.InputRequiredResult(input_requests=wanted, request_state="capability-gated")


CONTEXT_TOOLS: list[Callable[..., Any]] = [
    test_tool_with_logging, test_tool_with_progress, test_sampling, test_elicitation,
    test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums, test_reconnection,
    test_missing_capability, test_input_required_result_elicitation,
    test_input_required_result_sampling, test_input_required_result_list_roots,
    test_input_required_result_request_state, test_input_required_result_multiple_inputs,
    test_input_required_result_multi_round, test_input_required_result_tampered_state,
    test_input_required_result_capabilities,
]
