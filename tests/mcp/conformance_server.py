"""The catalogue the official MCP conformance suite expects of a server, served by Tether.

Each server scenario of the suite calls fixed names (`test_simple_text`, `test://static-text`,
`test_simple_prompt`, ...) and checks the answer; this module provides them on a
`TetherMCPServer`:

* `REGISTRY`: Tether tools (`@tool`), so their calls are governed, journaled runs like any call
  through `tether mcp serve`;
* `CONTEXT_TOOLS`: tools that need the live MCP request (log and progress notifications,
  sampling, elicitation, multi-round-trip input, SSE stream control), written with the SDK's
  decorator on the server's SDK object (`server.sdk.tool()`), which hands them the request's
  `Context`; Tether calls them as journaled runs too, while their request is open;
* resources, a resource template, prompts, completions, log levels and subscriptions: the
  server's SDK object, with the SDK's own decorators;
* the agents of the (unscored) tasks scenarios, as durable task-supporting tools
  (tests/mcp/conformance_agents.py).

Run it with ``python -m tests.mcp.conformance_server --port P --db PATH`` (as
tests/mcp/test_conformance.py does); it prints ``ready PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field

from tests.mcp.conformance_agents import NO_ARGUMENTS, SLOW_COMPUTE_SCHEMA
from tether.server.mcp import AgentTool, TetherMCPServer
from tether.tools import Tool, ToolRegistry, tool

#: a 1x1 PNG and a minimal WAV, the payloads the image/audio scenarios expect
PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5"
           "ErkJggg==")
WAV_MIN = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# -- governed Tether tools ------------------------------------------------------------------


@tool(side_effect="read")
def test_simple_text() -> str:
    """Answers with one text item (tools-call-simple-text)."""
    return "This is a simple text response for testing."


@tool(side_effect="read")
def test_image_content() -> list[types.ImageContent]:
    """Answers with an image item (tools-call-image)."""
    return [types.ImageContent(type="image", data=PNG_1X1, mime_type="image/png")]


@tool(side_effect="read")
def test_audio_content() -> list[types.AudioContent]:
    """Answers with an audio item (tools-call-audio)."""
    return [types.AudioContent(type="audio", data=WAV_MIN, mime_type="audio/wav")]


def _embedded(uri: str, text: str, mime: str = "text/plain") -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mime_type=mime, text=text))


@tool(side_effect="read")
def test_embedded_resource() -> list[types.EmbeddedResource]:
    """Answers with an embedded resource (tools-call-embedded-resource)."""
    return [_embedded("test://embedded-resource", "This is an embedded resource content.")]


@tool(side_effect="read")
def test_multiple_content_types() -> list[types.ContentBlock]:
    """Answers with text, an image and an embedded resource (tools-call-mixed-content)."""
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG_1X1, mime_type="image/png"),
        _embedded("test://mixed-content-resource", json.dumps({"test": "data", "value": 123}),
                  "application/json"),
    ]


@tool(side_effect="read")
def test_error_handling() -> str:
    """Always fails, so the client sees an error result (tools-call-error)."""
    raise RuntimeError("This tool intentionally returns an error for testing")


#: every JSON Schema 2020-12 keyword the json-schema-2020-12 scenario looks for in tools/list
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                          "properties": {"street": {"type": "string"},
                                         "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                   "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                   "phone": {"type": "string"}, "email": {"type": "string"}},
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


class _Schema2020Tool(Tool):
    """A tool whose argument schema is written by hand (a 2020-12 document, kept verbatim)."""

    def __init__(self) -> None:
        super().__init__(
            name="json_schema_2020_12_tool", version="1", side_effect="read", idempotent=True,
            description="Echoes its arguments; its schema uses JSON Schema 2020-12 keywords.",
            timeout=None, retries=0, parameters=SCHEMA_2020_12, accepts_idempotency_key=False,
            source=f"{__name__}:_Schema2020Tool")

    def validate(self, arguments: Any) -> dict[str, Any]:
        return dict(arguments or {})

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        return f"json_schema_2020_12_tool called with {json.dumps(arguments, sort_keys=True)}"


@tool(side_effect="read")
def greet(name: str) -> str:
    """Greets `name` at once (the tasks scenarios' call that needs no task)."""
    return f"Hello, {name}!"


REGISTRY = ToolRegistry([test_simple_text, test_image_content, test_audio_content,
                         test_embedded_resource, test_multiple_content_types,
                         test_error_handling, _Schema2020Tool(), greet])

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

# -- resources, prompts, completions, log level, subscriptions (the server's SDK object) --------


def _add_resources_and_prompts(server: TetherMCPServer) -> None:
    sdk = server.sdk
    subscribed: set[str] = set()

    @sdk.resource("test://static-text")
    def static_text() -> str:
        """A static text resource for testing"""
        return "This is the content of the static text resource."

    @sdk.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A static binary resource (image) for testing"""
        return base64.b64decode(PNG_1X1)

    @sdk.resource("test://template/{id}/data", mime_type="application/json")
    def template(id: str) -> str:
        """A resource template with parameter substitution"""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @sdk.resource("test://watched-resource")
    def watched() -> str:
        """A resource clients can subscribe to"""
        return "Watched resource content"

    @sdk.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A simple prompt without arguments"""
        return [UserMessage(role="user", content=types.TextContent(
            type="text", text="This is a simple prompt for testing."))]

    @sdk.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """A prompt with required arguments"""
        return [UserMessage(role="user", content=types.TextContent(
            type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @sdk.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """A prompt that includes an embedded resource"""
        return [UserMessage(role="user", content=_embedded(
                    resourceUri, "Embedded resource content for testing.")),
                UserMessage(role="user", content=types.TextContent(
                    type="text", text="Please process the embedded resource above."))]

    @sdk.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt that includes image content"""
        return [UserMessage(role="user", content=types.ImageContent(
                    type="image", data=PNG_1X1, mime_type="image/png")),
                UserMessage(role="user", content=types.TextContent(
                    type="text", text="Please analyze the image above."))]

    @sdk.prompt()
    async def test_input_required_result_prompt(
            ctx: Context) -> list[UserMessage] | types.InputRequiredResult:
        """A prompt that first asks the user for context (SEP-2322 on prompts/get)."""
        answers = ctx.input_responses or {}
        if "user_context" in answers:
            text = _field(answers["user_context"], "context") or "?"
            return [UserMessage(role="user", content=types.TextContent(
                type="text", text=f"Use the following context: {text}"))]
        schema = {"type": "object", "properties": {"context": {"type": "string"}},
                  "required": ["context"]}
        return types.InputRequiredResult(input_requests={
            "user_context": _ask("What context should the prompt use?", schema)})

    @sdk.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
        """No suggestions: the scenario checks the shape of the answer only."""
        return types.Completion(values=[], total=0, has_more=False)

    async def set_level(ctx: ServerRequestContext[Any, Any],
                        params: types.SetLevelRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    async def subscribe(ctx: ServerRequestContext[Any, Any],
                        params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscribed.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any],
                          params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscribed.discard(str(params.uri))
        return types.EmptyResult()

    low = sdk._lowlevel_server  # the SDK has no public seam for these three handlers yet
    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)


def build(db: str) -> TetherMCPServer:
    """The conformance server: `REGISTRY` plus everything above, journaling into `db`."""
    server = TetherMCPServer(REGISTRY, db=db, name="tether-conformance",
                             registry_ref=f"{__name__}:REGISTRY")
    for fn in CONTEXT_TOOLS:
        server.sdk.tool()(fn)
    _add_resources_and_prompts(server)
    agents = "tests.mcp.conformance_agents"
    server.add_agent(AgentTool("slow_compute", f"{agents}:slow_compute",
                               "Sleeps `seconds` on a durable timer, then answers.",
                               SLOW_COMPUTE_SCHEMA))
    server.add_agent(AgentTool("failing_job", f"{agents}:failing_job",
                               "Reports a tool error after a second.", NO_ARGUMENTS,
                               task_support="required"))
    server.add_agent(AgentTool("protocol_error_job", f"{agents}:protocol_error_job",
                               "Breaks: its task fails.", NO_ARGUMENTS))
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--db", required=True, help="the Tether database file")
    args = parser.parse_args(argv)
    server = build(args.db)

    def ready(port: int) -> None:
        print(f"ready {port}", flush=True)

    try:
        asyncio.run(server.serve_http(port=args.port, ready=ready))
    finally:
        server.close()


if __name__ == "__main__":
    main()
