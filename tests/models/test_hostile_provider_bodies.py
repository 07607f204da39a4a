"""A hostile or broken OpenAI-compatible server answering 200 with bodies Tether must not trust.

Every case runs against a real socket on 127.0.0.1 (`HostileServer`): a malformed field becomes a
`ModelResponseError` that names the field and the URL (retried by `RetryModel`), never an
`AttributeError`/`ValidationError` from deep inside the parser, and never a silently wrong reply.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.models.hostile_provider_support import HostileServer, Reply, chat_reply
from tether.models import Message, ModelResponse, ModelResponseError, OpenAIChatModel, validation

# The limits under test (imported from the modules once they define them).
MAX_TOKENS = 10**12
MAX_TOOL_CALLS = 256
MAX_REPAIR_CHARS = getattr(validation, "MAX_REPAIR_CHARS", 64 * 1024)


async def _complete(reply: Reply) -> ModelResponse:
    async with HostileServer(reply) as srv:
        model = OpenAIChatModel("gpt-4o-mini", base_url=srv.base_url, api_key="k", timeout=5)
        try:
            return await model.complete([Message.user("x")])
        finally:
            await model.aclose()


def _calls(*calls: dict[str, Any]) -> Reply:
    return Reply.json(chat_reply({"role": "assistant", "content": None, "tool_calls": list(calls)}))


def _call(cid: Any = "c1", name: Any = "add", arguments: Any = "{}") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize(("reply", "expected"), [
    (Reply.json({"choices": "abc"}), "choices is str 'abc', expected a list"),
    (Reply.json({"choices": ["abc"]}), "choices[0] is str 'abc', expected an object"),
    (Reply.json({"choices": [{"message": "hi"}]}), "choices[0].message is str 'hi'"),
    (Reply.json(chat_reply({"content": 42})), "choices[0].message.content is int"),
    (Reply.json(chat_reply(finish_reason={"x": 1})), "choices[0].finish_reason is dict"),
    (Reply.json(chat_reply(usage=[1, 2])), "usage is list [1, 2], expected an object"),
    (Reply.json(chat_reply(usage={"prompt_tokens": "many"})), "usage.prompt_tokens is str 'many'"),
    (Reply.json(chat_reply(usage={"prompt_tokens": -5})), "usage.prompt_tokens is negative (-5)"),
    (Reply.json(chat_reply(usage={"completion_tokens": 1.5})), "usage.completion_tokens is float"),
    (Reply.json(chat_reply(usage={"prompt_tokens": True})), "usage.prompt_tokens is bool"),
    (_calls("boom"), "choices[0].message.tool_calls[0] is str 'boom'"),
    (Reply.json(chat_reply({"tool_calls": "boom"})), "choices[0].message.tool_calls is str"),
    (_calls(_call(arguments=5)), "tool_calls[0].function.arguments is int, expected a JSON str"),
    (_calls(_call(arguments=[1])), "tool_calls[0].function.arguments is list"),
    (_calls(_call(cid=5)), "choices[0].message.tool_calls[0].id is int 5, expected a string"),
    (_calls(_call(name=7)), "tool_calls[0].function.name is int 7"),
    (_calls(_call(name="add\x00")), "tool_calls[0].function.name contains control characters"),
    (_calls(_call(cid="c\x1b[31m")), "tool_calls[0].id contains control characters"),
])
async def test_wrong_shapes_are_specific_response_errors(reply: Reply, expected: str) -> None:
    with pytest.raises(ModelResponseError) as info:
        await _complete(reply)
    msg = str(info.value)
    assert expected in msg
    assert "/v1/chat/completions sent an unusable reply" in msg
    assert info.value.transient  # RetryModel tries again; FallbackModel moves on


async def test_html_error_page_with_200_and_truncated_json_name_the_content_type() -> None:
    html = Reply(headers={"content-type": "text/html"}, pieces=[(0.0, b"<html>502 Bad</html>")])
    with pytest.raises(ModelResponseError, match=r"not JSON \(content-type 'text/html'\)"):
        await _complete(html)
    with pytest.raises(ModelResponseError, match=r"not JSON.*'\{\"choices\": \[\{\"mess'"):
        await _complete(Reply(pieces=[(0.0, b'{"choices": [{"mess')]))


async def test_content_parts_are_joined_and_unknown_finish_reason_is_unknown() -> None:
    parts = [{"type": "text", "text": "he"}, {"type": "image_url"}, {"type": "text", "text": "y"}]
    r = await _complete(Reply.json(chat_reply({"content": parts}, finish_reason="sparkles")))
    assert r.text == "hey" and r.finish_reason == "unknown"


def test_the_limits_here_are_the_modules_limits() -> None:
    from tether.models import _wire

    assert (_wire.MAX_TOKENS, _wire.MAX_TOOL_CALLS) == (MAX_TOKENS, MAX_TOOL_CALLS)
    assert validation.MAX_REPAIR_CHARS == MAX_REPAIR_CHARS


async def test_huge_token_counts_saturate_and_digit_strings_are_read() -> None:
    r = await _complete(Reply.json(chat_reply(usage={"prompt_tokens": 10**30,
                                                     "completion_tokens": "12"})))
    assert r.usage.input_tokens == MAX_TOKENS and r.usage.output_tokens == 12


async def test_duplicate_tool_call_ids_are_made_unique_in_order() -> None:
    r = await _complete(_calls(_call("a"), _call("a"), _call(""), _call("a")))
    assert [c.id for c in r.tool_calls] == ["a", "a-2", "call_2", "a-3"]


async def test_a_flood_of_tool_calls_is_refused() -> None:
    flood = [_call(f"c{i}") for i in range(5000)]
    with pytest.raises(ModelResponseError, match=f"has 5000 tool calls, more than the "
                                                 f"{MAX_TOOL_CALLS} allowed"):
        await _complete(_calls(*flood))
    ok = await _complete(_calls(*flood[:MAX_TOOL_CALLS]))
    assert len(ok.tool_calls) == MAX_TOOL_CALLS


async def test_a_10_mb_argument_string_is_kept_raw_quickly_not_repaired_for_hours() -> None:
    big = '{"x": "' + "a" * 10_000_000  # never closed: strict parsing fails, repair would crawl
    start = time.monotonic()
    r = await _complete(_calls(_call(arguments=big)))
    assert time.monotonic() - start < 5
    call = r.tool_calls[0]
    assert call.arguments == {} and call.raw_arguments == big  # feedback goes back to the model
    small = '{"x": "' + "a" * (MAX_REPAIR_CHARS // 2)  # small enough: still repaired
    assert (await _complete(_calls(_call(arguments=small)))).tool_calls[0].arguments["x"]
