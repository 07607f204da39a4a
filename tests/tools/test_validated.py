"""`Tool.validated`: validate a call once, and the tool runs on exactly those arguments.

The guards' gateway validates a proposal to judge it; the runtime, `invoke` and the function
tool used to validate it again, each a full pydantic pass. These tests hold the seam to its
promises: the same checks and errors, no second pass for the tool's own validated arguments,
a full pass for anything else, and the function called with the same values either way.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from annotated_types import Gt
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from tether.tools import ToolArgumentError, ValidatedArguments, tool
from tether.tools._schema import direct_call_fields


@tool(side_effect="read", idempotent=True)
def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


@tool
def shout(text: str) -> str:
    """Shout."""
    return text.upper()


@tool
def grow(items: list[int], tags: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Change its arguments in place, as a careless tool might."""
    items.append(0)
    if tags is not None:
        tags.setdefault("seen", []).append("x")
    return {"items": items, "tags": tags}


def test_validated_is_the_normal_form_read_only_and_handed_on_as_it_is() -> None:
    v = add.validated({"a": "2"})
    assert isinstance(v, ValidatedArguments) and v == {"a": 2, "b": 1} == add.validate({"a": "2"})
    assert add.validated(v) is v  # the same tool: no second pass
    again = add.validate(v)  # the runtime's check: a changeable plain copy, not a new pass
    assert type(again) is dict and again == v
    again["a"] = 5
    assert v["a"] == 2
    for change in (lambda: v.__setitem__("a", 3), lambda: v.update(a=3), lambda: v.pop("a"),
                   lambda: v.setdefault("c", 1), lambda: v.clear(), lambda: v.popitem()):
        with pytest.raises(TypeError, match="validated arguments of tool 'add' are read-only"):
            change()
    assert v == {"a": 2, "b": 1}


def test_validated_keeps_every_check_and_message() -> None:
    for bad in ({"a": "two"}, {"a": 1, "c": 3}, {}, "[1]", '{"a": 1, "a": 2}'):
        with pytest.raises(ToolArgumentError) as want:
            add.validate(bad)
        with pytest.raises(ToolArgumentError) as got:
            add.validated(bad)
        assert str(got.value) == str(want.value)
        assert got.value.errors == want.value.errors


def test_another_tools_validated_arguments_are_validated_in_full() -> None:
    theirs = shout.validated({"text": "hi"})
    with pytest.raises(ToolArgumentError, match="unexpected field"):
        add.validated(theirs)
    with pytest.raises(ToolArgumentError, match="unexpected field"):
        add.validate(theirs)
    result = asyncio.run(add.run(theirs))
    assert not result.ok and result.error is not None
    assert result.error.type == "invalid_arguments"


def test_a_copy_is_plain_data_validated_again() -> None:
    v = add.validated({"a": 1})
    for other in (dict(v), v.copy(), copy.copy(v), copy.deepcopy(v), pickle.loads(pickle.dumps(v)),
                  v | {"b": 2}):
        assert type(other) is dict
        assert type(add.validated(other)) is ValidatedArguments
        assert add.validated(other) is not other


def test_the_tools_own_validated_arguments_are_not_parsed_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    v = add.validated({"a": 40, "b": 2})

    class NoSecondPass:
        def validate_python(self, *_: Any, **__: Any) -> Any:
            raise AssertionError("validated arguments were parsed again")

    monkeypatch.setattr(add.args_model, "__pydantic_validator__", NoSecondPass())
    result = asyncio.run(add.run(v))
    assert result.ok and result.output == 42
    # plain arguments still go through the model: the guard above would fire
    failed = asyncio.run(add.run({"a": 40, "b": 2}))
    assert not failed.ok and failed.error is not None
    assert "parsed again" in failed.error.message


def test_a_tool_changing_its_arguments_does_not_change_what_was_validated() -> None:
    v = grow.validated({"items": [1], "tags": {"k": ["v"]}})
    first = asyncio.run(grow.run(v))
    second = asyncio.run(grow.run(v))  # a retry or a re-run gets the arguments as validated
    assert first.output == second.output == {"items": [1, 0], "tags": {"k": ["v"], "seen": ["x"]}}
    assert v == {"items": [1], "tags": {"k": ["v"]}}


class Colour(StrEnum):
    RED = "red"


class Point(BaseModel):
    x: int


def test_only_plain_json_arguments_skip_the_model() -> None:
    def fields(fn: Any) -> frozenset[str] | None:
        return direct_call_fields(tool(fn).args_model)

    def scalars(a: int, b: float, c: str | None, d: bool = False,
                e: Literal["x", 1] = "x",
                f: Annotated[int, Field(ge=0)] = 0,
                g: Annotated[str, StringConstraints(strip_whitespace=True, max_length=9)] = "",
                ) -> None: ...

    def containers(a: list[int], b: dict[str, Any], c: list[Annotated[int, Gt(0)]] | None,
                   d: Any = None, e: int = 0) -> None: ...

    assert fields(scalars) == frozenset()
    assert fields(containers) == frozenset({"a", "b", "c", "d"})

    def enum(a: Colour) -> None: ...
    def nested(a: Point) -> None: ...
    def a_date(a: date) -> None: ...
    def a_tuple(a: tuple[int, int]) -> None: ...
    def int_keys(a: dict[int, str]) -> None: ...
    def validator(a: Annotated[str, AfterValidator(str.strip)]) -> None: ...
    def deep_validator(a: list[Annotated[str, AfterValidator(str.strip)]]) -> None: ...
    def aliased(a: int = Field(alias="A")) -> None: ...
    def literal_enum(a: Literal[Colour.RED]) -> None: ...
    def in_union(a: int | Point) -> None: ...

    for fn in (enum, nested, a_date, a_tuple, int_keys, validator, deep_validator, aliased,
               literal_enum, in_union):
        assert fields(fn) is None, fn.__name__


@tool
def mixed(a: int, b: float, c: str | None = None, d: list[float] | None = None,
          e: dict[str, Any] | None = None, f: Literal["x", "y"] = "x", g: bool = False) -> None:
    """Plain JSON of every kind."""


@pytest.mark.parametrize("proposal", [
    {"a": 1, "b": 2},
    {"a": "3", "b": "2.5", "c": "s", "d": [1, "2", 3.5], "e": {"k": [1, {"n": None}]}},
    {"a": 1.0, "b": True, "f": "y", "g": "true"},
    '{"a": 7, "b": 1e3, "d": []}',
])
def test_the_function_gets_the_same_values_with_or_without_the_second_pass(
        proposal: Any) -> None:
    direct = mixed._kwargs(mixed.validated(proposal))
    parsed = mixed._kwargs(mixed.validate(proposal))  # a plain dict: parsed by the model
    assert direct == parsed
    assert {k: type(v) for k, v in direct.items()} == {k: type(v) for k, v in parsed.items()}
    assert mixed._direct is not None


class _NoSchemaPass:
    def iter_errors(self, *_: Any) -> Any:
        raise AssertionError("validated arguments were checked against the schema again")


def _schema_tools() -> list[Any]:
    """An OpenAPI tool and an MCP server's tool (not connected: validation is local)."""
    from mcp_types import Tool as RemoteTool

    from tether.tools import openapi_tools
    from tether.tools.mcp import MCPConnection, MCPTool

    from .mcp_support import test_server

    body = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    spec = {"openapi": "3.0.3", "info": {"title": "pets", "version": "1"}, "paths": {"/pets": {
        "post": {"operationId": "create_pet", "responses": {"200": {"description": "ok"}},
                 "requestBody": {"required": True,
                                 "content": {"application/json": {"schema": body}}}}}}}
    [openapi] = openapi_tools(spec, "http://127.0.0.1:1")
    remote = RemoteTool.model_validate({"name": "create_pet", "inputSchema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}})
    return [openapi, MCPTool(MCPConnection(test_server()), remote)]


def test_schema_tools_take_their_own_validated_arguments_without_a_second_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for schema_tool in _schema_tools():
        with pytest.raises(ToolArgumentError, match="name: Field required"):
            schema_tool.validated({})
        v = schema_tool.validated({"name": "Rex"})
        assert v == {"name": "Rex"} and schema_tool.validated(v) is v
        monkeypatch.setattr(schema_tool, "_validator", _NoSchemaPass())
        again = schema_tool.validate(v)  # the runtime's check
        assert type(again) is dict and again == v
        with pytest.raises(AssertionError, match="against the schema again"):
            schema_tool.validate({"name": "Rex"})


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 0.5, -0.0, 1e308, "", "plain",
    "tab\tand 'quotes'", "naïve", "\ud800", 2**64, -(2**63) - 1, float("nan"),
    float("inf"), -float("inf"), 10**30, [1, "a"], {"k": (1, 2)},
])
def test_a_result_that_is_already_json_is_kept_and_any_other_goes_the_long_way(
        value: Any) -> None:
    """The shortcut for exact JSON scalars gives what the journal's JSON round trip gives (or
    the same error): what is journaled does not change."""
    import orjson
    from pydantic_core import to_jsonable_python

    from tether.store import dumps, loads
    from tether.tools import ToolExecutionError
    from tether.tools._base import to_json_value

    try:
        expected: Any = loads(dumps(to_jsonable_python(value)))
    except (TypeError, orjson.JSONEncodeError):
        with pytest.raises(ToolExecutionError, match="not JSON-serialisable"):
            to_json_value("t", value)
        return
    got = to_json_value("t", value)
    assert orjson.dumps(got) == orjson.dumps(expected)
    assert type(got) is type(expected)
