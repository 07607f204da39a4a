"""OpenAI Chat Completions wire format against recorded fixtures (httpx MockTransport), plus the
failure modes against real sockets on 127.0.0.1 (nothing listening; a server that never answers)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
import pytest

from tests.models.models_testlib import ADD, PERSON_SCHEMA, WEATHER
from tether.models import (
    Message,
    ModelClientError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    OpenAIChatModel,
    ToolCall,
    ValidatingModel,
)

FIX = Path(__file__).parent / "fixtures"
HISTORY = [
    Message.system("You are a helpful assistant."),
    Message.user("Weather in Paris and 2+3?"),
    Message.assistant(None, [ToolCall(id="call_prev", name="add", arguments={"a": 1, "b": 1})]),
    Message.tool("call_prev", "2", name="add"),
]


def fixture_json(name: str) -> dict:
    return json.loads((FIX / name).read_text())


class Recorder:
    """A MockTransport handler that records requests and serves one canned response."""

    def __init__(self, status: int = 200, body: bytes | str | dict = b"", headers=None) -> None:
        self.status = status
        self.body = json.dumps(body).encode() if isinstance(body, dict) else body
        self.headers = headers or {"content-type": "application/json"}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        content = self.body.encode() if isinstance(self.body, str) else self.body
        return httpx.Response(self.status, content=content, headers=self.headers)

    def model(self, **kw) -> OpenAIChatModel:
        return OpenAIChatModel(
            "gpt-4o-mini", api_key="sk-test", transport=httpx.MockTransport(self), **kw
        )


async def test_request_matches_recorded_fixture_and_parallel_tool_calls_parse():
    rec = Recorder(body=fixture_json("openai_chat_response_tool_calls.json"))
    model = rec.model()
    r = await model.complete(HISTORY, tools=[WEATHER, ADD], tool_choice="auto", temperature=0)
    req = rec.requests[0]
    assert req.method == "POST" and str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert json.loads(req.content) == fixture_json("openai_chat_request.json")
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == [
        ToolCall(id="call_w1", name="get_weather", arguments={"city": "Paris", "unit": "celsius"}),
        ToolCall(id="call_a1", name="add", arguments={"a": 2, "b": 3}),
    ]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (112, 48)
    assert r.model == "gpt-4o-mini-2024-07-18"
    await model.aclose()


async def test_json_schema_response_format_and_named_tool_choice():
    body = {
        "model": "m",
        "choices": [{"message": {"content": '{"name":"Ada","age":36}'}, "finish_reason": "stop"}],
    }
    rec = Recorder(body=body)
    model = ValidatingModel(rec.model())
    r = await model.complete([Message.user("who?")], output_schema=PERSON_SCHEMA, seed=1)
    sent = json.loads(rec.requests[0].content)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": PERSON_SCHEMA},
    }
    assert sent["seed"] == 1
    assert r.output == {"name": "Ada", "age": 36}

    rec2 = Recorder(body=body)
    await rec2.model(json_schema_mode="json_object").complete(
        [Message.user("x")], tools=[ADD], tool_choice="add", output_schema=PERSON_SCHEMA
    )
    sent2 = json.loads(rec2.requests[0].content)
    assert sent2["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert sent2["response_format"] == {"type": "json_object", "schema": PERSON_SCHEMA}


async def test_malformed_tool_arguments_are_repaired_or_kept_raw():
    body = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "tool_calls": [
                        {"id": "a", "function": {"name": "add", "arguments": "{'a': 2, 'b': 3,}"}},
                        {"id": "b", "function": {"name": "add", "arguments": "a=2 b=3"}},
                    ]
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    r = await Recorder(body=body).model().complete([Message.user("x")], tools=[ADD])
    assert r.tool_calls[0].arguments == {"a": 2, "b": 3} and r.tool_calls[0].raw_arguments is None
    assert r.tool_calls[1].arguments == {} and r.tool_calls[1].raw_arguments == "a=2 b=3"


async def test_streaming_text_over_sse():
    rec = Recorder(
        body=(FIX / "openai_chat_stream.sse").read_bytes(),
        headers={"content-type": "text/event-stream"},
    )
    events = [e async for e in rec.model().stream([Message.user("hi")])]
    assert [e.text_delta for e in events if e.text_delta] == ["Hello", ", world"]
    final = events[-1].response
    assert final is not None and final.text == "Hello, world" and final.finish_reason == "stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 3)
    sent = json.loads(rec.requests[0].content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_streaming_parallel_tool_call_fragments_are_assembled():
    rec = Recorder(
        body=(FIX / "openai_chat_stream_tool_calls.sse").read_bytes(),
        headers={"content-type": "text/event-stream"},
    )
    events = [e async for e in rec.model().stream([Message.user("x")], tools=[WEATHER, ADD])]
    final = events[-1].response
    assert final is not None and final.finish_reason == "tool_calls"
    assert final.tool_calls == [
        ToolCall(id="call_w1", name="get_weather", arguments={"city": "Paris"}),
        ToolCall(id="call_a1", name="add", arguments={"a": 2, "b": 3}),
    ]


@pytest.mark.parametrize(
    ("status", "exc", "hint"),
    [
        (400, ModelClientError, "the request was rejected"),
        (401, ModelClientError, "check the API key (api_key=)"),
        (404, ModelClientError, "check the base URL and the model name"),
        (429, ModelRateLimitError, "rate limited"),
        (500, ModelServerError, "server error"),
        (503, ModelServerError, "server error"),
    ],
)
async def test_http_errors_map_to_specific_exceptions(status, exc, hint):
    rec = Recorder(status=status, body={"error": {"message": "nope", "type": "x"}})
    with pytest.raises(exc) as info:
        await rec.model().complete([Message.user("x")])
    err = info.value
    assert err.status_code == status
    assert f"HTTP {status} from https://api.openai.com/v1/chat/completions ({hint})" in str(err)
    assert "nope" in str(err)
    assert err.transient == (status >= 429)


async def test_streaming_http_error():
    with pytest.raises(ModelServerError, match="HTTP 502"):
        async for _ in Recorder(status=502, body="bad gateway").model().stream([Message.user("x")]):
            pass


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"id": "x", "model": "m", "choices": []}, "returned no choices"),
        ({"id": "x"}, "returned no choices"),
        ("<html>oops</html>", "not JSON"),
        ([1, 2], "expected a JSON object"),
    ],
)
async def test_unusable_bodies(body, match):
    raw = json.dumps(body) if not isinstance(body, str) else body
    with pytest.raises(ModelResponseError, match=match):
        await Recorder(body=raw).model().complete([Message.user("x")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_endpoint():
    port = _free_port()  # nothing listens there
    model = OpenAIChatModel("m", base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    with pytest.raises(ModelConnectionError) as info:
        await model.complete([Message.user("x")])
    assert f"could not reach http://127.0.0.1:{port}/v1/chat/completions" in str(info.value)
    assert "is the server running" in str(info.value)
    assert info.value.transient
    await model.aclose()


async def test_timeout_against_a_server_that_never_answers():
    accepted: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(65536)  # read the request, then say nothing

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    model = OpenAIChatModel("m", base_url=f"http://127.0.0.1:{port}/v1", timeout=0.5)
    try:
        with pytest.raises(ModelTimeoutError, match="did not answer in time"):
            await model.complete([Message.user("x")])
        assert accepted  # the request really reached the server
    finally:
        await model.aclose()
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("key", "env", "hint"), [
    (None, {}, "no API key was sent: set $OPENAI_API_KEY or pass api_key="),
    (None, {"OPENAI_API_KEY": "sk-env"}, "check the API key in $OPENAI_API_KEY"),
    ("sk-given", {"OPENAI_API_KEY": "sk-env"}, "check the API key (api_key=)"),
])
async def test_a_401_names_where_the_key_came_from(monkeypatch, key, env, hint):
    """With no key set, the 401 said "check the API key" without saying which variable the
    client reads."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rec = Recorder(status=401, body={"error": {"message": "no key", "type": "x"}})
    model = OpenAIChatModel("gpt-4o-mini", api_key=key, transport=httpx.MockTransport(rec))
    with pytest.raises(ModelClientError) as info:
        await model.complete([Message.user("x")])
    assert f"({hint})" in str(info.value)
    assert "sk-env" not in str(info.value) and "sk-given" not in str(info.value)


def test_the_base_url_comes_from_openai_base_url(monkeypatch):
    """As the `openai` package reads it: set, it was silently ignored and the call went to
    api.openai.com."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert OpenAIChatModel("m").url == "http://127.0.0.1:9/v1/chat/completions"
    assert OpenAIChatModel("m", base_url="http://h/v1").url == "http://h/v1/chat/completions"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIChatModel("m").url == "https://api.openai.com/v1/chat/completions"
