from __future__ import annotations

import pytest

from tether.models import (
    Message,
    ModelError,
    ModelResponse,
    ModelServerError,
    ScriptedModel,
    ToolCall,
    Usage,
    tool_call,
)


async def test_text_reply_and_recorded_call(tools):
    model = ScriptedModel(["hello there"])
    r = await model.complete([Message.user("hi")], tools=tools, temperature=0)
    assert r.text == "hello there"
    assert r.finish_reason == "stop"
    assert r.model == "scripted"
    assert r.usage == Usage(input_tokens=1, output_tokens=2)
    assert model.calls[0].messages == [Message.user("hi")]
    assert [t.name for t in model.calls[0].tools] == ["get_weather", "add"]
    assert model.calls[0].params == {"temperature": 0}


async def test_single_tool_call_gets_deterministic_id():
    model = ScriptedModel([tool_call("get_weather", {"city": "Paris"})])
    r = await model.complete([Message.user("weather?")])
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == [
        ToolCall(id="call_1_0", name="get_weather", arguments={"city": "Paris"})
    ]
    assert r.text is None


async def test_parallel_tool_calls_keep_order_and_ids():
    model = ScriptedModel(
        [[tool_call("get_weather", {"city": "Paris"}), tool_call("add", {"a": 1, "b": 2}, id="x")]]
    )
    r = await model.complete([Message.user("both")])
    assert [(c.id, c.name) for c in r.tool_calls] == [("call_1_0", "get_weather"), ("x", "add")]
    # The assistant message built from it carries both calls back into the history.
    msg = r.to_message()
    assert msg.role == "assistant" and len(msg.tool_calls) == 2


async def test_function_mode_sees_history():
    def reply(call):
        last = call.messages[-1]
        if last.role == "tool":
            return f"the answer is {last.content}"
        return tool_call("add", {"a": 2, "b": 3})

    model = ScriptedModel(fn=reply)
    r1 = await model.complete([Message.user("2+3?")])
    history = [Message.user("2+3?"), r1.to_message(), Message.tool(r1.tool_calls[0].id, "5")]
    r2 = await model.complete(history)
    assert r2.text == "the answer is 5"
    assert len(model.calls) == 2


async def test_async_function_mode_and_explicit_usage():
    async def reply(call):
        return ModelResponse(text="x", usage=Usage(input_tokens=10, output_tokens=3), model="m1")

    r = await ScriptedModel(fn=reply).complete([Message.user("q")])
    assert (r.model, r.usage.input_tokens, r.usage.output_tokens) == ("m1", 10, 3)


async def test_exception_items_are_raised_and_exhaustion_is_an_error():
    model = ScriptedModel([ModelServerError("boom", status_code=500), "ok"])
    with pytest.raises(ModelServerError):
        await model.complete([Message.user("q")])
    assert (await model.complete([Message.user("q")])).text == "ok"
    with pytest.raises(ModelError, match="ran out of responses"):
        await model.complete([Message.user("q")])


async def test_dict_items_and_openai_style_tool_dicts():
    model = ScriptedModel([{"text": "hi", "finish_reason": "length"}])
    r = await model.complete(
        [{"role": "user", "content": "q"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    )
    assert r.finish_reason == "length"
    assert model.calls[0].tools[0].name == "f"


def test_needs_exactly_one_source():
    with pytest.raises(ValueError):
        ScriptedModel()
    with pytest.raises(ValueError):
        ScriptedModel(["a"], fn=lambda c: "b")


def test_response_json_round_trip():
    r = ModelResponse(
        text=None,
        tool_calls=[ToolCall(id="1", name="f", arguments={"a": [1, {"b": None}]})],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=3, output_tokens=4),
        cost_usd=0.5,
        model="m",
    )
    assert ModelResponse.model_validate_json(r.model_dump_json()) == r
