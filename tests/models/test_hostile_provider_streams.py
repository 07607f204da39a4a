"""Hostile streams and pacing: SSE that never ends, stops mid-event, interleaves garbage or an
error, or drips one byte at a time; and bodies that decompress into a bomb.

The `timeout` of `OpenAIChatModel` bounds the whole call, not each read: a server that sends a
byte every half second must still be cut off at the deadline.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest

from tests.models.hostile_provider_support import (
    HostileServer,
    Reply,
    chat_reply,
    sse_event,
    text_chunk,
)
from tether.models import (
    Message,
    ModelConnectionError,
    ModelResponse,
    ModelResponseError,
    ModelTimeoutError,
    OpenAIChatModel,
)

DONE = b"data: [DONE]\n\n"
FINISH = sse_event({"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


async def _stream(reply: Reply, timeout: float = 5.0, **kw: int) -> tuple[list[str], ModelResponse]:
    async with HostileServer(reply) as srv:
        model = OpenAIChatModel("m", base_url=srv.base_url, timeout=timeout, **kw)
        deltas, final = [], None
        try:
            async for ev in model.stream([Message.user("x")]):
                deltas.append(ev.text_delta)
                final = ev.response or final
        finally:
            await model.aclose()
        assert final is not None
        return deltas, final


async def test_a_well_formed_stream_split_at_odd_byte_boundaries_assembles() -> None:
    raw = text_chunk("hel") + text_chunk("lo") + FINISH + DONE
    reply = Reply.sse([raw[i:i + 7] for i in range(0, len(raw), 7)])
    deltas, final = await _stream(reply)
    assert "".join(deltas) == "hello" and final.text == "hello" and final.finish_reason == "stop"


@pytest.mark.parametrize(("events", "expected"), [
    ([text_chunk("a"), b'data: {"choices": [{"del'], "a stream event is not JSON"),
    ([text_chunk("a"), b"data: <html>oops</html>\n\n", text_chunk("b")], "'<html>oops</html>'"),
    ([sse_event({"choices": "x"})], "choices is str 'x', expected a list"),
    ([sse_event([1, 2])], "a stream event is list [1, 2], expected an object"),
    ([sse_event({"choices": [{"delta": {"tool_calls": [{"index": "zz"}]}}]})],
     "tool_calls[0].index is 'zz', expected an integer"),
    ([sse_event({"choices": [{"delta": {"tool_calls": [{"index": 10**12}]}}]}), DONE],
     "index is 1000000000000"),
    ([sse_event({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": 5}}]}}]})],
     "function.arguments is int, expected a string"),
    ([text_chunk("a"), sse_event({"error": {"message": "model overloaded"}})],
     "reported an error in the middle of the stream: model overloaded"),
    ([text_chunk("half an ans")], "ended after a partial reply, without a finish_reason"),
    ([DONE], "ended with no choices"),
])
async def test_broken_streams_are_specific_response_errors(events: list[bytes],
                                                           expected: str) -> None:
    with pytest.raises(ModelResponseError) as info:
        await _stream(Reply.sse(events))
    assert expected in str(info.value)
    assert info.value.transient


async def test_a_stream_that_never_ends_is_cut_at_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(ModelTimeoutError, match=r"did not finish its reply within the 0\.5 s"):
        await _stream(Reply.sse([text_chunk("a")], hang=True), timeout=0.5)
    assert time.monotonic() - start < 3


async def test_a_stream_dripping_bytes_is_cut_at_the_overall_timeout() -> None:
    # each pause is far below the per-read timeout; only an overall deadline stops this
    drip = Reply.sse([text_chunk("a")] + [b" "] * 200, pause=0.05)
    start = time.monotonic()
    with pytest.raises(ModelTimeoutError, match="answered too slowly or never ended"):
        await _stream(drip, timeout=0.5)
    assert time.monotonic() - start < 3


async def test_a_body_dripping_bytes_is_cut_at_the_overall_timeout() -> None:
    body = json.dumps(chat_reply()).encode()
    drip = Reply(pieces=[(0.05, body[i:i + 1]) for i in range(len(body))])
    async with HostileServer(drip) as srv:
        model = OpenAIChatModel("m", base_url=srv.base_url, timeout=0.5)
        start = time.monotonic()
        try:
            with pytest.raises(ModelTimeoutError, match=r"within the 0\.5 s timeout"):
                await model.complete([Message.user("x")])
        finally:
            await model.aclose()
        assert time.monotonic() - start < 3


async def test_a_gzip_bomb_is_refused_at_the_size_cap() -> None:
    bomb = gzip.compress(b" " * 50_000_000)  # ~50 KB on the wire, 50 MB inflated
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    async with HostileServer(Reply(headers=headers, pieces=[(0.0, bomb)])) as srv:
        model = OpenAIChatModel("m", base_url=srv.base_url, max_response_bytes=1_000_000)
        try:
            with pytest.raises(ModelResponseError, match="larger than 1000000 bytes") as info:
                await model.complete([Message.user("x")])
        finally:
            await model.aclose()
    assert not info.value.transient  # retrying a bomb would only inflate it again
    with pytest.raises(ModelResponseError, match="larger than 1000000 bytes"):
        await _stream(Reply(headers={"content-type": "text/event-stream",
                                     "content-encoding": "gzip"},
                            pieces=[(0.0, bomb)], length=False), max_response_bytes=1_000_000)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_cut_short_of_its_content_length_says_so(stream: bool) -> None:
    """The server was reached: the error must say the reply broke off, not "is it running?"."""
    headers = {"content-type": "application/json", "content-length": "1000"}
    cut = Reply(headers=headers, pieces=[(0.0, b'{"choices": [')], length=False)
    with pytest.raises(ModelConnectionError) as info:
        if stream:
            await _stream(cut)
        else:
            async with HostileServer(cut) as srv:
                model = OpenAIChatModel("m", base_url=srv.base_url)
                try:
                    await model.complete([Message.user("x")])
                finally:
                    await model.aclose()
    msg = str(info.value)
    assert "broke off or garbled its reply" in msg and "is the server running" not in msg
    assert info.value.transient
