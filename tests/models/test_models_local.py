"""The in-process llama.cpp model under grammar-constrained decoding (Qwen2.5-Coder-0.5B)."""

from __future__ import annotations

import pytest

from tests.models.models_testlib import ADD, PERSON_SCHEMA, WEATHER
from tether.models import SMALL_WEIGHTS, Message, check_response
from tether.models.local import decoding_schema

pytest.importorskip("llama_cpp", reason="needs the tether[local] extra (make setup installs it)")

from tether.models.local import LocalModel

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_model() -> LocalModel:
    model = LocalModel(SMALL_WEIGHTS, n_ctx=2048, allow_download=False, seed=0)
    model.load()
    return model


async def test_constrained_tool_call_is_schema_valid(local_model: LocalModel) -> None:
    tools = [WEATHER, ADD]
    r = await local_model.complete(
        [Message.user("What's the weather in Tokyo, in celsius?")],
        tools=tools,
        tool_choice="required",
    )
    assert r.finish_reason == "tool_calls" and r.tool_calls
    _, errors = check_response(r, tools=tools, output_schema=None, tool_choice="required")
    assert errors == []
    assert r.tool_calls[0].name == "get_weather"
    assert "tokyo" in r.tool_calls[0].arguments["city"].lower()
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.model == "local:" + SMALL_WEIGHTS.name


async def test_named_tool_choice_forces_that_tool(local_model: LocalModel) -> None:
    r = await local_model.complete(
        [Message.user("Add 17 and 25.")], tools=[WEATHER, ADD], tool_choice="add"
    )
    [call] = r.tool_calls
    assert call.name == "add" and call.arguments == {"a": 17, "b": 25}


async def test_structured_output_matches_schema(local_model: LocalModel) -> None:
    r = await local_model.complete(
        [Message.user("Ada Lovelace died at 36. Give her name and age.")],
        output_schema=PERSON_SCHEMA,
    )
    _, errors = check_response(r, tools=[], output_schema=PERSON_SCHEMA)
    assert errors == []


async def test_tool_result_round_trip_then_answer(local_model: LocalModel) -> None:
    first = await local_model.complete(
        [Message.user("What is 2 plus 3? Use the tool.")], tools=[ADD], tool_choice="add"
    )
    call = first.tool_calls[0]
    history = [
        Message.user("What is 2 plus 3? Use the tool."),
        first.to_message(),
        Message.tool(call.id, "5", name="add"),
    ]
    second = await local_model.complete(history, tools=[ADD], tool_choice="none")
    assert second.tool_calls == [] and second.text is not None and "5" in second.text


def test_decoding_schema_shapes() -> None:
    assert decoding_schema([], None, None) is None
    auto = decoding_schema([WEATHER, ADD], None, "auto")
    assert auto is not None and len(auto["anyOf"]) == 2
    forced = decoding_schema([WEATHER, ADD], None, "add")
    assert forced is not None
    assert forced["properties"]["tool_calls"]["items"]["properties"]["name"] == {"const": "add"}
    assert decoding_schema([WEATHER], PERSON_SCHEMA, "none") == {
        "type": "object",
        "properties": {"answer": PERSON_SCHEMA},
        "required": ["answer"],
        "additionalProperties": False,
    }
