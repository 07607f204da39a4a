"""Anthropic Messages API wire format through the official SDK, against recorded fixtures served
by an httpx MockTransport (the SDK's own HTTP stack runs for real)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.models.models_testlib import ADD, PERSON_SCHEMA, WEATHER

pytest.importorskip(
    "anthropic", reason="needs the tether[anthropic] extra (make setup installs it)"
)

from tether.models import (
    Message,
    ModelClientError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelServerError,
    ModelTimeoutError,
    ToolCall,
    ValidatingModel,
)
from tether.models.anthropic import AnthropicModel


def _sdk_http_module():
    """The SDK's HTTP library: `httpx` before anthropic 2.x, its fork `httpx2` since."""
    import anthropic._base_client as base

    return getattr(base, "httpx2", None) or base.httpx


hx = _sdk_http_module()

FIX = Path(__file__).parent / "fixtures"
HISTORY = [
    Message.system("You are a helpful assistant."),
    Message.user("Weather in Paris and 2+3?"),
    Message.assistant(None, [ToolCall(id="toolu_prev", name="add", arguments={"a": 1, "b": 1})]),
    Message.tool("toolu_prev", "2", name="add"),
]


class Recorder:
    def __init__(self, status: int = 200, body: dict | str | None = None) -> None:
        self.status = status
        self.body = body
        self.requests: list[hx.Request] = []

    def __call__(self, request):
        self.requests.append(request)
        if isinstance(self.body, dict):
            return hx.Response(self.status, json=self.body)
        return hx.Response(self.status, text=self.body or "")

    def model(self, **kw) -> AnthropicModel:
        client = hx.AsyncClient(transport=hx.MockTransport(self))
        return AnthropicModel(
            "claude-haiku-4-5-20251001", api_key="sk-ant-test", http_client=client, **kw
        )


async def test_request_matches_recorded_fixture_and_tool_use_blocks_parse():
    rec = Recorder(body=json.loads((FIX / "anthropic_messages_response_tool_use.json").read_text()))
    model = rec.model(max_tokens=1024)
    r = await model.complete(HISTORY, tools=[WEATHER, ADD], tool_choice="auto", temperature=0)
    req = rec.requests[0]
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    # The key travels as x-api-key (anthropic < 2) or as a bearer token (2.x).
    assert req.headers.get("x-api-key") == "sk-ant-test" or (
        req.headers.get("authorization") == "Bearer sk-ant-test"
    )
    assert "anthropic-version" in req.headers
    assert json.loads(req.content) == json.loads(
        (FIX / "anthropic_messages_request.json").read_text()
    )
    assert r.text == "I'll look up the weather and add the numbers."
    assert r.tool_calls == [
        ToolCall(
            id="toolu_01A", name="get_weather", arguments={"city": "Paris", "unit": "celsius"}
        ),
        ToolCall(id="toolu_01B", name="add", arguments={"a": 2, "b": 3}),
    ]
    assert r.finish_reason == "tool_calls"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (420, 95)
    await model.aclose()


async def test_structured_output_uses_a_forced_output_tool():
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [
            {
                "type": "tool_use",
                "id": "t1",
                "name": "final_output",
                "input": {"name": "Ada", "age": 36},
            }
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 20},
    }
    rec = Recorder(body=body)
    r = await ValidatingModel(rec.model()).complete(
        [Message.user("who?")], output_schema=PERSON_SCHEMA, stop="END"
    )
    sent = json.loads(rec.requests[0].content)
    assert sent["tools"][-1]["name"] == "final_output"
    assert sent["tools"][-1]["input_schema"] == PERSON_SCHEMA
    assert sent["tool_choice"] == {"type": "tool", "name": "final_output"}
    assert sent["stop_sequences"] == ["END"]
    assert r.output == {"name": "Ada", "age": 36} and r.tool_calls == []
    assert r.finish_reason == "stop"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, ModelClientError),
        (401, ModelClientError),
        (429, ModelRateLimitError),
        (500, ModelServerError),
        (529, ModelServerError),
    ],
)
async def test_http_errors(status, exc):
    body = {"type": "error", "error": {"type": "some_error", "message": "details here"}}
    with pytest.raises(exc) as info:
        await Recorder(status=status, body=body).model().complete([Message.user("x")])
    assert info.value.status_code == status
    assert f"HTTP {status} from https://api.anthropic.com/v1/messages" in str(info.value)
    assert "details here" in str(info.value)


async def test_unreachable_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = AnthropicModel("claude-x", api_key="k", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ModelConnectionError, match=f"could not reach http://127.0.0.1:{port}"):
        await model.complete([Message.user("x")])


async def test_timeout():
    def slow(request):
        raise hx.ReadTimeout("timed out", request=request)

    client = hx.AsyncClient(transport=hx.MockTransport(slow))
    model = AnthropicModel("claude-x", api_key="k", http_client=client)
    with pytest.raises(ModelTimeoutError, match="did not answer in time"):
        await model.complete([Message.user("x")])
