"""The guards' stability check (validating the validated arguments once more) is skipped only
for a tool whose schema guarantees it could not fail (`FunctionTool.stable_validation`): what
`PolicyGate.prepare` returns is then the same as with the check, and a tool with a validator
function, or whose validation is overridden, is still checked (and refused when unstable)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import AfterValidator

from tether.guards._policygate import PolicyGate
from tether.tools import ToolArgumentError, tool
from tether.tools._decorator import FunctionTool
from tether.tools._validated import validated_by


@tool
def plain(n: int, ratio: float = 0.5, tags: list[str] | None = None, note: str = "") -> int:
    """Plain JSON arguments only."""
    return n


@tool
def shouted(label: Annotated[str, AfterValidator(lambda s: s + "!")]) -> str:
    """A validator function that changes its own output again."""
    return label


class Renaming(FunctionTool):
    def validate(self, arguments: Any) -> dict[str, Any]:
        normal = super().validate(arguments)
        return {**normal, "n": normal["n"] + 1}  # not stable: checked, then refused


def test_only_a_plain_schema_is_known_stable() -> None:
    assert plain.stable_validation
    assert not shouted.stable_validation
    assert not Renaming(plain.fn).stable_validation


@pytest.mark.parametrize("arguments", [
    {"n": 3}, {"n": "4", "ratio": 1}, {"n": 5.0, "tags": ["a", "b"], "note": "x"},
    '{"n": 6, "ratio": "0.25"}',
])
def test_prepared_as_the_check_would_have_them(arguments: Any) -> None:
    gate = PolicyGate()
    prepared = gate.prepare(None, "plain", gate.parse("plain", arguments), tool=plain)
    checked = plain.validated(plain.validate(gate.parse("plain", arguments)))
    assert validated_by(prepared, plain)
    assert list(prepared.items()) == list(checked.items())


def test_an_unstable_tool_is_still_refused() -> None:
    gate = PolicyGate()
    with pytest.raises(ToolArgumentError, match="not stable"):
        gate.prepare(None, "shouted", {"label": "hi"}, tool=shouted)
    renaming = Renaming(plain.fn)
    with pytest.raises(ToolArgumentError, match="not stable"):
        gate.prepare(None, "plain", {"n": 1}, tool=renaming)
