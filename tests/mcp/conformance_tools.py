"""The conformance suite's plain tools, as governed Tether tools (`@tool`): every call of one
is a journaled run like any call through `tether mcp serve`; `REGISTRY` holds them."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

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
