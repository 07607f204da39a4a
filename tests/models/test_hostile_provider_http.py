"""Hostile HTTP behaviour: error statuses with sane and absurd `Retry-After`, redirects to other
hosts, an API key echoed in an error body, and the Anthropic client against the same server.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from tests.models.hostile_provider_support import HostileServer, Reply, chat_reply
from tether.models import (
    Message,
    ModelClientError,
    ModelRateLimitError,
    ModelResponse,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    OpenAIChatModel,
    RetryModel,
    Usage,
    errors,
)

KEY = "sk-proj-ECHOED0123456789abcdef"


class Sleeps:
    """Records what RetryModel sleeps instead of sleeping (the delay is the thing under test)."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize(("retry_after", "expected"), [
    ("1e9", 20.0),         # absurd: capped at max_delay, the worker is not parked for decades
    ("-3", 0.5),           # negative: ignored, plain backoff
    ("nan", 0.5),
    ("soon", 0.5),
    ("7", 7.0),            # sane: honoured
])
async def test_retry_after_is_honoured_within_max_delay(retry_after: str, expected: float) -> None:
    def handler(n: int, body: bytes) -> Reply:
        if n == 1:
            return Reply.json({"error": "slow down"}, status=429, **{"retry-after": retry_after})
        return Reply.json(chat_reply())

    async with HostileServer(handler) as srv:
        sleeps = Sleeps()
        inner = OpenAIChatModel("m", base_url=srv.base_url, api_key=KEY)
        model = RetryModel(inner, jitter=False, initial_delay=0.5, max_delay=20, sleep=sleeps)
        try:
            assert (await model.complete([Message.user("x")])).text == "hi"
        finally:
            await model.aclose()
    assert sleeps.slept == [expected]


def test_retry_after_parsing() -> None:
    parse_retry_after = errors.parse_retry_after
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert [parse_retry_after(v) for v in ("-1", "inf", "", None, "Wed, 99 Foo")] == [None] * 5


async def test_503_is_retried_then_surfaces_with_the_status_and_body() -> None:
    reply = Reply.json({"error": "down for maintenance"}, status=503)
    async with HostileServer(reply) as srv:
        inner = OpenAIChatModel("m", base_url=srv.base_url)
        model = RetryModel(inner, max_attempts=3, sleep=Sleeps())
        try:
            with pytest.raises(ModelServerError, match=r"HTTP 503 .*down for maintenance") as info:
                await model.complete([Message.user("x")])
        finally:
            await model.aclose()
        assert info.value.status_code == 503 and len(srv.requests) == 3


async def test_a_redirect_to_another_host_is_not_followed_and_says_why() -> None:
    async with HostileServer(Reply(pieces=[(0.0, b'{"choices": []}')])) as elsewhere:
        target = f"{elsewhere.base_url}/chat/completions?key={KEY}"
        redirect = Reply(status=302, headers={"location": target}, pieces=[])
        async with HostileServer(redirect) as srv:
            model = OpenAIChatModel("m", base_url=srv.base_url, api_key=KEY)
            try:
                with pytest.raises(ModelClientError) as info:
                    await model.complete([Message.user("x")])
            finally:
                await model.aclose()
        assert not elsewhere.requests  # the key never travelled to the other host
    msg = str(info.value)
    assert "HTTP 302" in msg and "not followed" in msg and "set base_url" in msg
    assert KEY not in msg and not info.value.transient


@pytest.mark.parametrize("stream", [False, True])
async def test_an_echoed_api_key_is_redacted_from_the_error(stream: bool) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}.",
                      "headers": {"Authorization": f"Bearer {KEY}"}}}
    async with HostileServer(Reply.json(body, status=401)) as srv:
        model = OpenAIChatModel("m", base_url=srv.base_url, api_key=KEY)
        try:
            with pytest.raises(ModelClientError) as info:
                if stream:
                    async for _ in model.stream([Message.user("x")]):
                        pass
                else:
                    await model.complete([Message.user("x")])
        finally:
            await model.aclose()
    err = info.value
    assert "HTTP 401" in str(err) and "check the API key" in str(err)
    for text in (str(err), err.body, repr(err.args)):
        assert KEY not in text and "ECHOED0123" not in text
    assert "[REDACTED]" in err.body


def test_redact_catches_key_shapes_it_was_not_told_about() -> None:
    text = errors.redact("a sk-ant-api03-abcdefghij b Bearer eyJhbGciOiJIUzI1 c mysecretvalue",
                  ["mysecretvalue"])
    assert text == "a [REDACTED] b Bearer [REDACTED] c [REDACTED]"


def test_usage_and_cost_cannot_be_negative_or_nan() -> None:
    """Budgets sum these: a negative count would refund a budget, a NaN cost would make every
    `spent >= limit` comparison false."""
    with pytest.raises(ValidationError):
        Usage(input_tokens=-1)
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            ModelResponse(cost_usd=bad)


# --------------------------------------------------------------------------- Anthropic
anthropic = pytest.importorskip("anthropic")


def _msg(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    return {**body, **kw}


async def _anthropic(reply: Reply, timeout: float = 5.0) -> ModelResponse:
    from tether.models.anthropic import AnthropicModel

    async with HostileServer(reply) as srv:
        model = AnthropicModel("claude-3-5-haiku", base_url=f"http://127.0.0.1:{srv.port}",
                               api_key=KEY, timeout=timeout)
        try:
            return await model.complete([Message.user("x")])
        finally:
            await model.aclose()


@pytest.mark.parametrize(("reply", "expected"), [
    (Reply(pieces=[(0.0, b"<html>hi</html>")]), "returned an unusable body (JSONDecodeError)"),
    (Reply.json(_msg(content="hello")), "content is str 'hello', expected a list"),
    (Reply.json(_msg(content=["hello"])), "content[0] is str 'hello', expected an object"),
    (Reply.json(_msg(usage={"input_tokens": -4})), "usage.input_tokens is negative (-4)"),
    (Reply.json(_msg(usage={"input_tokens": "lots"})), "usage.input_tokens is str 'lots'"),
    (Reply.json(_msg(content=[{"type": "tool_use", "id": "t", "name": 5, "input": {}}])),
     "content[0].name is int 5, expected a string"),
])
async def test_anthropic_wrong_shapes_are_response_errors(reply: Reply, expected: str) -> None:
    with pytest.raises(ModelResponseError) as info:
        await _anthropic(reply)
    assert expected in str(info.value)


async def test_anthropic_saturates_usage_dedupes_ids_and_redacts_keys() -> None:
    tool = {"type": "tool_use", "id": "t", "name": "add", "input": {}}
    r = await _anthropic(Reply.json(_msg(content=[tool, tool],
                                         usage={"input_tokens": 10**30})))
    assert r.usage.input_tokens == 10**12 and [c.id for c in r.tool_calls] == ["t", "t-2"]
    err_body = {"type": "error", "error": {"type": "authentication_error", "message": KEY}}
    with pytest.raises(ModelClientError) as info:
        await _anthropic(Reply.json(err_body, status=401))
    assert KEY not in str(info.value) and KEY not in info.value.body
    with pytest.raises(ModelRateLimitError) as limited:
        await _anthropic(Reply.json(err_body, status=429, **{"retry-after": "4"}))
    assert limited.value.retry_after == 4.0


async def test_anthropic_dripping_reply_is_cut_at_the_overall_timeout() -> None:
    import json

    body = json.dumps(_msg()).encode()
    start = time.monotonic()
    with pytest.raises(ModelTimeoutError, match=r"within the 0\.5 s timeout"):
        await _anthropic(Reply(pieces=[(0.05, body[i:i + 1]) for i in range(len(body))]), 0.5)
    assert time.monotonic() - start < 3
