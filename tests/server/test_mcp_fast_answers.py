"""Shortcuts on every `tools/call`, held to what they replace: the answer written directly
(`text_result`) is the SDK model's dump, key order included, and the quick check of an object of
scalars (`_not_canonical`) finds what the full walk finds."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest

from tether.server.mcp._call_checks import _not_canonical
from tether.server.mcp._results import RELATED_TASK, _text, _wire, text_result

VALUES: list[Any] = [
    {"order_id": "o-5", "status": "shipped"}, {}, {"nested": {"a": [1, 2.5, None, True]}},
    [1, "two"], "plain text", "", 42, 2.5, None, True, {"_meta": 1, "isError": "x"},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("meta", [None, {RELATED_TASK: {"taskId": "r123"}}])
def test_text_result_is_the_models_dump(value: Any, meta: dict[str, Any] | None) -> None:
    structured = value if isinstance(value, dict) else None
    expected = _wire(types.CallToolResult(
        content=[types.TextContent(type="text", text=_text(value))],
        structured_content=structured, is_error=False, _meta=meta))
    got = text_result(_text(value), structured, meta)
    assert json.dumps(got) == json.dumps(expected)  # same keys, same order, same values


@pytest.mark.parametrize(("arguments", "where"), [
    ({"a": 1, "b": "x", "c": None, "d": True, "e": 1.5}, None),
    ({"a": float("nan")}, "a"),
    ({"a": 1, "b": float("inf")}, "b"),
    ({"big": 2**63}, "big"),
    ({"small": -(2**63) - 1}, "small"),
    ({"edge": -(2**63), "top": 2**63 - 1}, None),
    ({"deep": {"x": [1, float("-inf")]}}, "deep.x.1"),
    ({"list": [1, 2, 3]}, None),
])
def test_the_quick_check_finds_what_the_walk_finds(arguments: dict[str, Any],
                                                   where: str | None) -> None:
    assert _not_canonical(arguments) == where


def test_subclassed_scalars_take_the_full_walk() -> None:
    class Big(int):
        pass

    assert _not_canonical({"n": Big(2**64)}) == "n"
    assert _not_canonical({"n": Big(3)}) is None
