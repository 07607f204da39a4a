"""The Anthropic client's reply size cap, against a real server on 127.0.0.1: an oversized body,
a gzip bomb and an oversized error page are refused as `OpenAIChatModel` refuses them (the same
non-transient `ModelResponseError`), while an ordinary compressed reply still reads.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from tests.models.hostile_provider_support import HostileServer, Reply
from tether.models import Message, ModelResponse, ModelResponseError, RetryModel

anthropic = pytest.importorskip("anthropic")

KEY = "sk-ant-CAPTEST0123456789"
MiB = 1024 * 1024


def _msg(text: str = "hi") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2}}


def _gzipped(raw: bytes, status: int = 200) -> Reply:
    return Reply(status=status, pieces=[(0.0, gzip.compress(raw, compresslevel=9))],
                 headers={"content-type": "application/json", "content-encoding": "gzip"})


async def _anthropic(reply: Reply, **kw: Any) -> tuple[ModelResponse, HostileServer]:
    from tether.models.anthropic import AnthropicModel

    async with HostileServer(reply) as srv:
        model = AnthropicModel("claude-3-5-haiku", base_url=f"http://127.0.0.1:{srv.port}",
                               api_key=KEY, timeout=20, **kw)
        try:
            return await model.complete([Message.user("x")]), srv
        finally:
            await model.aclose()


async def test_an_oversized_reply_is_refused() -> None:
    big = json.dumps(_msg("x" * (2 * MiB))).encode()
    with pytest.raises(ModelResponseError) as info:
        await _anthropic(Reply.json(big), max_response_bytes=MiB)
    assert f"larger than {MiB} bytes (decompressed)" in str(info.value)
    assert "/v1/messages" in str(info.value) and "max_response_bytes" in str(info.value)
    assert not info.value.transient  # RetryModel does not ask for it again


async def test_a_gzip_bomb_stops_at_the_default_cap() -> None:
    # 64 MiB of JSON, well-formed, sent as ~64 KiB of gzip
    head = b'{"type": "message", "content": [{"type": "text", "text": "'
    bomb = head + b" " * (64 * MiB) + b'"}]}'
    reply = _gzipped(bomb)
    assert len(reply.pieces[0][1]) < MiB
    start = time.monotonic()
    with pytest.raises(ModelResponseError, match=r"larger than 33554432 bytes \(decompressed\)"):
        await _anthropic(reply)
    assert time.monotonic() - start < 15


async def test_an_oversized_error_page_is_refused_too() -> None:
    page = json.dumps({"type": "error", "error": {"message": "x" * (2 * MiB)}}).encode()
    with pytest.raises(ModelResponseError, match="larger than"):
        await _anthropic(_gzipped(page, status=500), max_response_bytes=MiB)


async def test_the_cap_is_not_retried() -> None:
    from tether.models.anthropic import AnthropicModel

    big = json.dumps(_msg("x" * (2 * MiB))).encode()
    async with HostileServer(Reply.json(big)) as srv:
        inner = AnthropicModel("claude-3-5-haiku", base_url=f"http://127.0.0.1:{srv.port}",
                               api_key=KEY, timeout=20, max_response_bytes=MiB)
        model = RetryModel(inner, initial_delay=0.01)
        try:
            with pytest.raises(ModelResponseError, match="larger than"):
                await model.complete([Message.user("x")])
        finally:
            await model.aclose()
        assert len(srv.requests) == 1


async def test_a_compressed_reply_within_the_cap_reads_normally() -> None:
    r, _ = await _anthropic(_gzipped(json.dumps(_msg("x" * 1000)).encode()),
                            max_response_bytes=MiB)
    assert r.text == "x" * 1000 and r.usage.input_tokens == 3


async def test_a_redirect_is_refused_before_the_prompt_follows_it() -> None:
    """The SDK's own client follows redirects: the prompt (and, with SDKs sending `x-api-key`,
    the key) went to wherever a provider, proxy or attacker pointed it."""
    from tether.models import ModelClientError
    from tether.models.anthropic import AnthropicModel

    async with HostileServer(Reply.json(_msg("elsewhere"))) as other:
        moved = Reply(status=307, headers={"location": f"http://127.0.0.1:{other.port}/v1/messages",
                                           "content-length": "0"})
        async with HostileServer(moved) as srv:
            model = AnthropicModel("claude-3-5-haiku", base_url=f"http://127.0.0.1:{srv.port}",
                                   api_key=KEY, timeout=20)
            try:
                with pytest.raises(ModelClientError) as info:
                    await model.complete([Message.user("the secret plan")])
            finally:
                await model.aclose()
        assert other.requests == []  # nothing reached the other host
    assert "redirect to http://127.0.0.1" in str(info.value) and "not followed" in str(info.value)
    assert not info.value.transient
