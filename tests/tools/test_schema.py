from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from tether.tools import FunctionTool, ToolDefinitionError, tool


class Unit(StrEnum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Address(BaseModel):
    city: str = Field(description="City name")
    country: str = "NO"
    zip: str | None = None


class Stop(BaseModel):
    address: Address
    minutes: int = Field(ge=0, description="How long to stay")


@tool(version="2", side_effect="write", idempotent=False, timeout=5, retries=2)
def plan_trip(
    stops: list[Stop],
    unit: Unit = Unit.CELSIUS,
    mode: Literal["car", "train"] = "train",
    budget: Annotated[float, Field(gt=0, description="Maximum spend in EUR")] = 100.0,
    note: str | None = None,
) -> dict[str, int]:
    """Plan a trip through several stops.

    Longer explanation for the model.

    Args:
        stops: Where to go, in order.
        unit: Temperature unit for forecasts
            shown along the way.
        note: Free text.

    Returns:
        The plan.
    """
    return {"stops": len(stops)}


def test_metadata_comes_from_decorator_and_docstring() -> None:
    assert isinstance(plan_trip, FunctionTool)
    assert plan_trip.name == "plan_trip"
    assert plan_trip.version == "2"
    assert plan_trip.side_effect == "write"
    assert plan_trip.idempotent is False
    assert plan_trip.timeout == 5
    assert plan_trip.retries == 2
    assert plan_trip.description == (
        "Plan a trip through several stops.\n\nLonger explanation for the model."
    )
    assert "Returns" not in plan_trip.description


def test_schema_nested_models_enums_optional_defaults_descriptions() -> None:
    schema = plan_trip.parameters
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["required"] == ["stops"]
    assert schema["additionalProperties"] is False
    # nested models through $defs
    assert props["stops"]["type"] == "array"
    assert props["stops"]["items"] == {"$ref": "#/$defs/Stop"}
    assert props["stops"]["description"] == "Where to go, in order."
    stop = schema["$defs"]["Stop"]
    assert stop["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert stop["properties"]["minutes"] == {
        "type": "integer", "minimum": 0, "description": "How long to stay",
    }
    address = schema["$defs"]["Address"]
    assert address["required"] == ["city"]
    assert address["properties"]["country"]["default"] == "NO"
    # enum and Literal
    assert schema["$defs"]["Unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"]}
    assert props["unit"]["default"] == "celsius"
    assert props["unit"]["description"] == "Temperature unit for forecasts shown along the way."
    assert props["mode"]["enum"] == ["car", "train"]
    assert props["mode"]["default"] == "train"
    # Annotated Field description wins, constraints kept
    assert props["budget"] == {
        "type": "number", "exclusiveMinimum": 0, "default": 100.0,
        "description": "Maximum spend in EUR",
    }
    # optional → nullable, default None
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["note"]["default"] is None
    # no pydantic noise
    assert "title" not in schema and "title" not in props["budget"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_property_named_title_is_kept() -> None:
    @tool
    def rename(title: str) -> str:
        """Rename."""
        return title

    assert list(rename.parameters["properties"]) == ["title"]


def test_definition_is_provider_neutral() -> None:
    d = plan_trip.definition()
    assert set(d) == {"name", "description", "parameters"}
    assert d["name"] == "plan_trip"


def test_decorated_function_still_callable_directly() -> None:
    out = plan_trip([Stop(address=Address(city="Oslo"), minutes=5)])
    assert out == {"stops": 1}
    assert plan_trip.__name__ == "plan_trip"


def test_idempotency_key_param_is_hidden_from_schema() -> None:
    @tool(side_effect="write")
    def charge(amount: int, idempotency_key: str | None = None) -> str:
        """Charge money."""
        return f"{amount}:{idempotency_key}"

    assert charge.accepts_idempotency_key is True
    assert list(charge.parameters["properties"]) == ["amount"]
    assert charge.idempotent is False  # writes are not idempotent unless declared


def test_read_tools_default_to_idempotent() -> None:
    @tool
    def lookup(key: str) -> str:
        return key

    assert lookup.side_effect == "read" and lookup.idempotent is True
    assert lookup.accepts_idempotency_key is False
    assert lookup.version == "1"
    assert lookup.description == ""


def test_hash_is_stable_and_sensitive_to_schema() -> None:
    def make(kind: type) -> FunctionTool:
        def f(x: int) -> None:
            """Doc."""

        f.__annotations__ = {"x": kind, "return": None}
        return tool(name="f")(f)

    assert make(int).schema_hash == make(int).schema_hash
    assert make(int).schema_hash != make(str).schema_hash
    assert make(int).schema_hash.startswith("sha256:")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"side_effect": "delete"}, "side_effect must be one of read, write, destructive"),
        ({"name": "bad name!"}, "invalid tool name"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"version": ""}, "version must be a non-empty string"),
    ],
)
def test_bad_metadata_is_rejected(options: dict[str, object], message: str) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match=message):
        tool(**options)(f)  # type: ignore[arg-type]


def test_untyped_parameter_is_a_definition_error() -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ToolDefinitionError, match="parameter 'x' has no type annotation"):
        tool(f)


def test_var_args_are_rejected() -> None:
    def f(*items: int) -> int:
        return 0

    with pytest.raises(ToolDefinitionError, match=r"\*args/\*\*kwargs parameter 'items'"):
        tool(f)


class Opaque:
    pass


def test_unschemable_type_is_a_definition_error() -> None:
    def f(x: Opaque) -> None:
        return None

    with pytest.raises(ToolDefinitionError, match="cannot generate a JSON Schema"):
        tool(f)


def test_approval_metadata() -> None:
    @tool(side_effect="destructive", requires_approval=True)
    def drop(table: str) -> None:
        """Drop a table."""

    @tool(side_effect="destructive", critical=True)
    def wire(to: str) -> None:
        """Wire money."""

    assert (drop.requires_approval, drop.critical) == (True, False)
    assert (wire.requires_approval, wire.critical) == (True, True)  # critical implies approval
    assert plan_trip.requires_approval is False and plan_trip.kind == "python"
    assert drop.contract()["requires_approval"] is True
