from __future__ import annotations

import asyncio
import time
from enum import StrEnum

import pytest
from pydantic import BaseModel

from tether.tools import (
    FieldError,
    ToolArgumentError,
    ToolExecutionError,
    ToolResult,
    ToolTimeoutError,
    tool,
)


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    sku: str
    qty: int


@tool
def order(items: list[Item], color: Color, express: bool = False) -> dict[str, object]:
    """Place an order."""
    return {"n": sum(i.qty for i in items), "color": color, "express": express}


def test_validation_error_names_each_field_and_problem() -> None:
    with pytest.raises(ToolArgumentError) as info:
        order.validate({"items": [{"sku": "a", "qty": "many"}], "colour": "red"})
    err = info.value
    assert err.tool == "order"
    fields = {e.field: e for e in err.errors}
    assert set(fields) == {"items.0.qty", "color", "colour"}
    assert "valid integer" in fields["items.0.qty"].message
    assert fields["items.0.qty"].value == "many"
    assert fields["color"].message == "Field required"
    assert "unexpected field" in fields["colour"].message
    text = str(err)
    assert text.startswith("invalid arguments for tool 'order':")
    assert "- items.0.qty: Input should be a valid integer" in text
    assert "(got 'many')" in text
    assert "- color: Field required" in text
    assert "call the tool again" in text


def test_enum_error_lists_allowed_values() -> None:
    with pytest.raises(ToolArgumentError, match="'red' or 'blue'"):
        order.validate({"items": [], "color": "green"})


def test_valid_arguments_are_normalised() -> None:
    args = order.validate({"items": [{"sku": "a", "qty": "2"}], "color": "red"})
    assert args == {"items": [{"sku": "a", "qty": 2}], "color": "red", "express": False}


def test_arguments_as_json_string_and_repairable_json() -> None:
    assert order.validate('{"items": [], "color": "blue"}')["color"] == "blue"
    # trailing comma + single quotes: repaired because it still decodes to an object
    assert order.validate("{'items': [], 'color': 'blue',}")["color"] == "blue"


@pytest.mark.parametrize("bad", [[1, 2], 42, "not json at all"])
def test_non_object_arguments_are_a_clear_error(bad: object) -> None:
    with pytest.raises(ToolArgumentError) as info:
        order.validate(bad)
    (only,) = info.value.errors
    assert only.field == ""
    assert "JSON" in only.message


def test_field_error_str_truncates_long_values() -> None:
    text = str(FieldError("a.b", "too long", "x" * 500))
    assert text.startswith("a.b: too long (got 'xxx")
    assert len(text) < 130


async def test_invoke_returns_json_values_and_nested_models_reach_the_function() -> None:
    seen: list[object] = []

    @tool
    def count(items: list[Item]) -> Item:
        seen.append(items[0])
        return Item(sku="total", qty=sum(i.qty for i in items))

    out = await count.invoke({"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}]})
    assert out == {"sku": "total", "qty": 5}
    assert isinstance(seen[0], Item)


async def test_async_tool_and_run_result() -> None:
    @tool
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    result = await double.run({"x": 21})
    assert result == ToolResult(tool="double", ok=True, output=42)
    assert result.observation() == "42"


async def test_run_turns_errors_into_failed_results() -> None:
    @tool
    def boom(x: int) -> int:
        raise RuntimeError(f"exploded on {x}")

    bad_args = await boom.run({"x": "nope"})
    assert not bad_args.ok and bad_args.error is not None
    assert bad_args.error.type == "invalid_arguments"
    assert bad_args.observation().startswith("ERROR (invalid_arguments): invalid arguments")

    failed = await boom.run({"x": 3})
    assert failed.error is not None
    assert failed.error.type == "execution_error"
    assert failed.error.message == "exploded on 3"
    assert failed.error.exception == "RuntimeError"


async def test_timeout_applies_to_sync_and_async_tools() -> None:
    @tool(timeout=0.05)
    async def slow_async() -> None:
        await asyncio.sleep(5)

    @tool(timeout=0.05)
    def slow_sync() -> None:
        time.sleep(0.3)

    for t in (slow_async, slow_sync):
        with pytest.raises(ToolTimeoutError, match=r"timed out after 0\.05s"):
            await t.invoke({})
        res = await t.run({})
        assert res.error is not None and res.error.type == "timeout"


async def test_retries_reuse_the_idempotency_key() -> None:
    keys: list[str | None] = []

    @tool(side_effect="write", retries=2)
    def flaky(idempotency_key: str | None = None) -> str:
        keys.append(idempotency_key)
        if len(keys) < 3:
            raise ConnectionError("transient")
        return "done"

    assert await flaky.invoke({}, idempotency_key="run1:7") == "done"
    assert keys == ["run1:7", "run1:7", "run1:7"]


async def test_retries_are_bounded_and_argument_errors_are_not_retried() -> None:
    calls = 0

    @tool(retries=1)
    def always_fails(x: int) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await always_fails.invoke({"x": 1})
    assert calls == 2
    with pytest.raises(ToolArgumentError):
        await always_fails.invoke({"x": "one"})
    assert calls == 2


async def test_non_json_return_value_is_an_execution_error() -> None:
    @tool
    def weird() -> object:
        return object()

    with pytest.raises(ToolExecutionError, match="not JSON-serialisable"):
        await weird.invoke({})


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("result", "why"), [
    (_nested(300), "nested too deeply"),
    (2**100, "Integer exceeds 64-bit range"),
])
async def test_a_result_the_journal_cannot_hold_is_not_a_reason_to_run_again(
        result: object, why: str) -> None:
    """The retries were for the call's failures; the result's conversion failing counted as
    one, so a `write` tool with retries=2 paid three times."""
    paid: list[int] = []

    @tool(side_effect="write", retries=2)
    def pay(amount: int) -> object:
        paid.append(amount)
        return result

    outcome = await pay.run({"amount": 5})
    assert paid == [5]
    assert not outcome.ok and outcome.error is not None
    assert why in outcome.error.message
    assert "its effect took place" in outcome.error.message
    assert "do not call it again" in outcome.error.message
