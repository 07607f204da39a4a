"""The conformance suite's resources, resource template, prompts, completions, log levels and
subscriptions: on the server's SDK object, with the SDK's own decorators."""

from __future__ import annotations

import base64
import json
from typing import Any

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import UserMessage

from tests.mcp.conformance_live import _ask, _field
from tests.mcp.conformance_tools import PNG_1X1, _embedded
from tether.server.mcp import TetherMCPServer

# -- resources, prompts, completions, log level, subscriptions (the server's SDK object) --------


def add_resources_and_prompts(server: TetherMCPServer) -> None:
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
