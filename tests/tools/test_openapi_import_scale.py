"""Importing large OpenAPI specs: shared components are converted and meta-checked once per
import, without changing any tool's schema or letting a bad schema through.

The speed itself is measured by benchmarks/bench_openapi.py; these tests pin what makes it fast
(the meta-schema check does not grow with the operations sharing a component) and what must not
change with it (each tool's schema, byte for byte; errors, now saying where they are).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import jsonschema
import pytest

from tether.tools import OpenAPIError, ToolArgumentError, openapi_tools

BASE = "http://127.0.0.1:1/api"


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None,
         parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "scale", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas or {}, "parameters": parameters or {}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


# components that refer to each other, recursively too (Node -> Node, Tree -> Node -> Leaf)
SCHEMAS: dict[str, Any] = {
    "Leaf": {"type": "object", "properties": {"v": {"type": "integer", "nullable": True}},
             "required": ["v"]},
    "Node": {"type": "object", "properties": {
        "leaf": _ref("Leaf"), "children": {"type": "array", "items": _ref("Node")},
        "either": {"oneOf": [_ref("Leaf"), {"type": "string"}]}}},
    "Tree": {"type": "object", "properties": {"root": _ref("Node"), "size": {
        "type": "integer", "minimum": 0, "exclusiveMinimum": True}}, "required": ["root"]},
    "Pair": {"type": "array", "items": {"allOf": [_ref("Tree"), _ref("Leaf")]}},
}


def _many(n: int) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for i in range(n):
        paths[f"/trees{i}/{{id}}"] = {
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "get": {"operationId": f"get_{i}", "parameters": [
                {"name": "depth", "in": "query", "schema": {"type": "integer", "maximum": 9}}]},
            "put": {"operationId": f"put_{i}", "requestBody": _body(_ref("Tree"))},
            "post": {"operationId": f"post_{i}", "requestBody": _body(_ref("Pair"))},
        }
    return _doc(paths, SCHEMAS)


def _meta_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every schema jsonschema validates against the 2020-12 meta-schema."""
    seen: list[Any] = []
    cls = jsonschema.Draft202012Validator
    original = cls.iter_errors

    def iter_errors(self: Any, instance: Any, *args: Any, **kwargs: Any) -> Any:
        if self.schema is cls.META_SCHEMA:
            seen.append(instance)
        return original(self, instance, *args, **kwargs)

    monkeypatch.setattr(cls, "iter_errors", iter_errors)
    return seen


def test_shared_components_are_meta_checked_once_per_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = _meta_checks(monkeypatch)
    tools = openapi_tools(_many(60), BASE)
    assert len(tools) == 180
    # each component once, plus the few distinct argument schemas and argument objects; the
    # count does not grow with the operations that share them (it was one per operation, each
    # carrying every component it reaches)
    assert sum(1 for s in checked if s is not None and s == tools[1].parameters["$defs"]["Tree"]
               ) == 1
    assert len(checked) < 30
    checked.clear()
    openapi_tools(_many(3), BASE)  # another import checks again: nothing is kept between them
    assert len(checked) > 4


def test_each_tool_schema_is_what_importing_its_operation_alone_gives() -> None:
    doc = _many(3)
    together = openapi_tools(doc, BASE)
    for tool in together:
        alone = openapi_tools(doc, BASE, operations=[tool.name])[0]
        # key order too: the schema a model is sent and the lock hash stay as they were
        assert json.dumps(tool.parameters) == json.dumps(alone.parameters)
        assert tool.schema_hash == alone.schema_hash
    put = {t.name: t for t in together}["put_0"]
    assert list(put.parameters["$defs"]) == ["Tree", "Node", "Leaf"]
    assert put.body_mode == "flat"
    put.validate({"id": 1, "root": {"leaf": {"v": None}, "children": [{"either": "x"}]}})
    with pytest.raises(ToolArgumentError, match=r"children\.0\.leaf"):
        put.validate({"id": 1, "root": {"children": [{"leaf": {}}]}})


def test_a_bad_component_is_refused_and_named_whichever_operation_reaches_it() -> None:
    schemas = {**SCHEMAS, "Bad": {"type": "object", "properties": {"n": {"type": "intger"}}},
               "UsesBad": {"type": "object", "properties": {"bad": _ref("Bad")}}}
    paths = {"/ok": {"get": {"operationId": "ok"}, "put": {"requestBody": _body(_ref("Tree"))}},
             "/bad": {"post": {"operationId": "bad", "requestBody": _body(
                 {"type": "array", "items": _ref("UsesBad")})}}}
    with pytest.raises(OpenAPIError) as info:
        openapi_tools(_doc(paths, schemas), BASE)
    assert str(info.value) == (
        "OpenAPI spec 'scale', POST /bad: invalid schema: 'intger' is not valid under any of "
        "the given schemas (in #/components/schemas/Bad/properties/n/type)"
    )


def test_a_bad_argument_schema_is_refused_and_named() -> None:
    good = {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 5}}
    bad = {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": "5"}}
    paths = {"/a": {"get": {"operationId": "a", "parameters": [good]}},
             "/b": {"get": {"operationId": "b", "parameters": [bad]}}}
    with pytest.raises(OpenAPIError) as info:
        openapi_tools(_doc(paths), BASE)
    assert str(info.value) == (
        "OpenAPI spec 'scale', GET /b: invalid schema: '5' is not of type 'number' "
        "(in argument 'limit', at maximum)"
    )


def test_a_date_is_not_taken_for_the_string_it_prints_as() -> None:
    """Checked pieces are remembered by their JSON; a date (a YAML parser's, in a parsed spec
    passed as a dict) is not JSON, and not a valid `format`, where the string is."""
    as_text = {"name": "d", "in": "query", "schema": {"type": "string", "format": "2024-01-01"}}
    as_date = {"name": "d", "in": "query",
               "schema": {"type": "string", "format": datetime.date(2024, 1, 1)}}
    paths = {"/a": {"get": {"operationId": "a", "parameters": [as_text]}},
             "/b": {"get": {"operationId": "b", "parameters": [as_date]}}}
    with pytest.raises(OpenAPIError, match=(
            r"GET /b: invalid schema: datetime.date\(2024, 1, 1\) is not of type 'string'")):
        openapi_tools(_doc(paths), BASE)


def test_a_cycle_through_a_component_schema_is_finite_and_accepted() -> None:
    """A non-component `$ref` that leads back to itself through `components/schemas` ends at
    the component's `$defs` entry. It was refused as circular when the operation inlined it
    first (and not when the component was converted first), so the answer depended on order."""
    parameters = {"p": {"name": "p", "in": "query", "schema": {
        "type": "object", "properties": {"x": _ref("X")}}}}
    schemas = {"X": {"type": "object", "properties": {
        "p": {"$ref": "#/components/parameters/p/schema"}}}}
    via = {"name": "q", "in": "query", "schema": {"$ref": "#/components/parameters/p/schema"}}
    paths = {"/q": {"get": {"operationId": "q", "parameters": [via]}},
             "/x": {"put": {"operationId": "x", "requestBody": _body(_ref("X"))}}}
    tools = {t.name: t for t in openapi_tools(_doc(paths, schemas, parameters), BASE)}
    q = tools["q"]
    assert q.parameters["properties"]["q"] == {
        "type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}}
    assert q.parameters["$defs"]["X"] == {"type": "object", "properties": {
        "p": {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}}}}
    q.validate({"q": {"x": {"p": {"x": {}}}}})
    with pytest.raises(ToolArgumentError, match=r"q\.x\.p"):
        q.validate({"q": {"x": {"p": 3}}})
    alone = openapi_tools(_doc(paths, schemas, parameters), BASE, operations=["x"])[0]
    assert alone.parameters == tools["x"].parameters


def test_a_cycle_outside_components_is_still_named() -> None:
    parameters = {"p": {"name": "p", "in": "query", "schema": {
        "type": "object", "properties": {"again": {"$ref": "#/components/parameters/p/schema"}}}}}
    via = {"name": "q", "in": "query", "schema": {"$ref": "#/components/parameters/p/schema"}}
    paths = {"/q": {"get": {"operationId": "q", "parameters": [via]}}}
    with pytest.raises(OpenAPIError, match=r"circular \$ref #/components/parameters/p/schema"):
        openapi_tools(_doc(paths, {}, parameters), BASE)


def test_a_failed_component_is_not_kept_half_converted() -> None:
    """The import stops at the first error; the next import of the same document reports the
    same error, not a stale placeholder."""
    schemas = {"A": {"type": "object", "properties": {"b": _ref("B")}},
               "B": {"$id": "http://evil.example/b"}}
    paths = {"/a": {"put": {"operationId": "a", "requestBody": _body(_ref("A"))}}}
    for _ in range(2):
        with pytest.raises(OpenAPIError, match=r"PUT /a: schema keyword '\$id' is not supported"):
            openapi_tools(_doc(paths, schemas), BASE)
