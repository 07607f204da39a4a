from __future__ import annotations

import pytest

from tests.models.models_testlib import PERSON_SCHEMA
from tether.models import (
    Message,
    ModelOutputError,
    ModelResponse,
    ScriptedModel,
    ToolCall,
    ValidatingModel,
    check_response,
    parse_json,
    tool_call,
)
from tether.models.validation import JSONParseError, parse_tool_arguments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Ada", "age": 36,}', {"name": "Ada", "age": 36}),  # trailing comma
        ("{'name': 'Ada', 'age': 36}", {"name": "Ada", "age": 36}),  # single quotes
        ('```json\n{"name": "Ada", "age": 36}\n```', {"name": "Ada", "age": 36}),  # fence
        ('Sure! Here it is: {"name": "Ada", "age": 36} Hope it helps.', {"name": "Ada", "age": 36}),
        ('{"name": "Ada", "age": 36', {"name": "Ada", "age": 36}),  # unclosed
    ],
)
def test_repairs_common_malformations(text, expected):
    parsed = parse_json(text, PERSON_SCHEMA)
    assert parsed.value == expected
    assert parsed.repaired is True


def test_strict_json_is_not_marked_repaired():
    assert parse_json('{"a": 1}').repaired is False


@pytest.mark.parametrize("text", ["hello world", "", "I cannot do that.", "{}garbage{"])
def test_unsafe_or_hopeless_text_is_not_repaired(text):
    with pytest.raises(JSONParseError):
        parse_json(text, PERSON_SCHEMA)


def test_repair_that_breaks_the_schema_is_refused():
    # json_repair can turn this into an object, but not a valid person: not "safe".
    with pytest.raises(JSONParseError, match="does not match the schema"):
        parse_json("{'name': 'Ada', 'age': 'old',}", PERSON_SCHEMA)


def test_tool_argument_parsing_keeps_raw_text_when_unrepairable():
    assert parse_tool_arguments('{"city": "Paris",}') == ({"city": "Paris"}, None)
    assert parse_tool_arguments("") == ({}, None)
    assert parse_tool_arguments("city=Paris") == ({}, "city=Paris")
    assert parse_tool_arguments("[1, 2]") == ({}, "[1, 2]")


def test_check_response_reports_each_problem(tools):
    bad = ModelResponse(
        tool_calls=[
            ToolCall(id="1", name="get_weather", arguments={"city": 3}),
            ToolCall(id="2", name="launch", arguments={}),
            ToolCall(id="3", name="add", arguments={}, raw_arguments="a=1"),
        ]
    )
    _, errors = check_response(bad, tools=tools, output_schema=None)
    assert len(errors) == 3
    assert "at $.city: 3 is not of type 'string'" in errors[0]
    assert "unknown tool 'launch'; available tools: add, get_weather" in errors[1]
    assert "not valid JSON" in errors[2]


def test_required_tool_call_missing(tools):
    _, errors = check_response(
        ModelResponse(text="no"), tools=tools, output_schema=None, tool_choice="required"
    )
    assert errors == ["a tool call was required but the reply contains none"]


async def test_valid_tool_calls_pass_through_unchanged(tools):
    model = ValidatingModel(ScriptedModel([tool_call("add", {"a": 1, "b": 2})]))
    r = await model.complete([Message.user("1+2")], tools=tools)
    assert r.tool_calls[0].arguments == {"a": 1, "b": 2}


async def test_structured_output_is_repaired_and_parsed():
    model = ValidatingModel(ScriptedModel(["```json\n{'name': 'Ada', 'age': 36,}\n```"]))
    r = await model.complete([Message.user("who?")], output_schema=PERSON_SCHEMA)
    assert r.output == {"name": "Ada", "age": 36}


async def test_feedback_loop_recovers_from_invalid_tool_arguments(tools):
    inner = ScriptedModel(
        [tool_call("add", {"a": "one", "b": 2}), tool_call("add", {"a": 1, "b": 2})]
    )
    r = await ValidatingModel(inner, max_feedback=2).complete([Message.user("1+2")], tools=tools)
    assert r.tool_calls[0].arguments == {"a": 1, "b": 2}
    assert len(inner.calls) == 2
    # The second request shows the model its invalid call and the errors, as a tool result.
    second = inner.calls[1].messages
    assert second[1].role == "assistant" and second[1].tool_calls[0].arguments["a"] == "one"
    assert second[2].role == "tool" and second[2].tool_call_id == second[1].tool_calls[0].id
    assert "at $.a: 'one' is not of type 'integer'" in (second[2].content or "")


async def test_feedback_loop_for_structured_output_uses_a_user_turn():
    inner = ScriptedModel(['{"name": "Ada"}', '{"name": "Ada", "age": 36}'])
    r = await ValidatingModel(inner).complete([Message.user("who?")], output_schema=PERSON_SCHEMA)
    assert r.output == {"name": "Ada", "age": 36}
    fb = inner.calls[1].messages
    assert [m.role for m in fb] == ["user", "assistant", "user"]
    assert "'age' is a required property" in (fb[2].content or "")


async def test_feedback_loop_gives_up_after_n_rounds_with_last_output(tools):
    inner = ScriptedModel(
        [
            tool_call("add", {"a": "x"}),
            tool_call("add", {"a": "y"}),
            tool_call("add", {"a": "z", "b": 1}),
        ]
    )
    with pytest.raises(ModelOutputError) as info:
        await ValidatingModel(inner, max_feedback=2).complete([Message.user("?")], tools=tools)
    err = info.value
    assert err.attempts == 3 and len(inner.calls) == 3
    assert err.last_output is not None and '"z"' in err.last_output
    assert "still invalid after 3 attempt(s)" in str(err) and '"z"' in str(err)
    assert any("'z' is not of type 'integer'" in e for e in err.errors)


async def test_zero_feedback_fails_on_first_invalid_output():
    inner = ScriptedModel(["not json at all"])
    with pytest.raises(ModelOutputError, match="not JSON") as info:
        await ValidatingModel(inner, max_feedback=0).complete(
            [Message.user("?")], output_schema=PERSON_SCHEMA
        )
    assert info.value.last_output == "not json at all"
