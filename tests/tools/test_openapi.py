from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from tether.tools import (
    OpenAPIError,
    OpenAPITool,
    ToolArgumentError,
    ToolExecutionError,
    ToolRegistry,
    openapi_tools,
)

if TYPE_CHECKING:
    from conftest import PetStore


def _tools(spec: Path, base_url: str, **options: object) -> dict[str, OpenAPITool]:
    return {t.name: t for t in openapi_tools(spec, base_url, **options)}  # type: ignore[arg-type]


def test_each_operation_becomes_a_tool_with_metadata(petstore_spec: Path) -> None:
    tools = _tools(petstore_spec, "http://127.0.0.1:1/v1")
    assert sorted(tools) == ["create_pet", "create_pets", "delete_pet", "get_pet", "list_pets"]
    lp, cp, dp = tools["list_pets"], tools["create_pet"], tools["delete_pet"]
    assert (lp.side_effect, lp.idempotent) == ("read", True)
    assert (cp.side_effect, cp.idempotent) == ("write", False)
    assert (dp.side_effect, dp.idempotent) == ("destructive", False)
    assert lp.version == "1.2.0"  # info.version
    assert lp.description == "List pets\n\nPets sorted by id, optionally filtered by tag."
    assert dp.description == "DELETE /pets/{pet_id}"
    assert lp.source == "openapi:petstore.yaml#list_pets"


def test_parameters_and_body_merge_into_one_schema(petstore_spec: Path) -> None:
    tools = _tools(petstore_spec, "http://127.0.0.1:1/v1")
    lp = tools["list_pets"].parameters
    # $ref'd parameter resolved, description carried over, no required args
    assert lp["properties"]["limit"] == {
        "type": "integer", "minimum": 1, "maximum": 100, "default": 20,
    }
    assert lp["properties"]["tag"]["description"] == "Only pets with this tag"
    assert "required" not in lp
    gp = tools["get_pet"].parameters  # path-level parameter inherited, always required
    assert gp["properties"]["pet_id"] == {"type": "integer"}
    assert gp["required"] == ["pet_id"]
    cp = tools["create_pet"]
    # object body flattened next to the header parameter; component schemas become $defs
    assert set(cp.parameters["properties"]) == {"X-Request-Source", "name", "kind", "tag"}
    assert cp.parameters["required"] == ["name", "kind"]
    assert cp.parameters["properties"]["kind"] == {"$ref": "#/$defs/Kind"}
    assert cp.parameters["$defs"]["Kind"]["enum"] == ["cat", "dog", "bird"]
    # OpenAPI 3.0 nullable → JSON Schema null type
    assert cp.parameters["properties"]["tag"] == {"type": ["string", "null"]}
    assert cp.body_mode == "flat"
    batch = tools["create_pets"]  # an array body cannot be flattened: one `body` argument
    assert batch.body_mode == "body"
    assert batch.parameters["required"] == ["body"]
    assert batch.parameters["properties"]["body"]["items"] == {"$ref": "#/$defs/NewPet"}


def test_validation_errors_for_openapi_tools(petstore_spec: Path) -> None:
    tools = _tools(petstore_spec, "http://127.0.0.1:1/v1")
    with pytest.raises(ToolArgumentError) as info:
        tools["create_pet"].validate({"kind": "fish", "nmae": "Rex"})
    by_field = {e.field: e.message for e in info.value.errors}
    assert by_field["name"] == "Field required"
    assert "is not one of ['cat', 'dog', 'bird']" in by_field["kind"]
    assert "unexpected field" in by_field["nmae"]
    with pytest.raises(ToolArgumentError, match=r"limit: 500 is greater than the maximum of 100"):
        tools["list_pets"].validate({"limit": 500})


async def test_calls_hit_the_real_server(petstore: PetStore, petstore_spec: Path) -> None:
    reg = ToolRegistry()
    reg.add_openapi(petstore_spec, petstore.base_url, headers={"Authorization": "Bearer t"})
    created = await reg.get("create_pet").invoke(
        {"name": "Rex", "kind": "dog", "tag": "good", "X-Request-Source": "test"}
    )
    assert created == {"id": 1, "name": "Rex", "kind": "dog", "tag": "good"}
    method, path, headers = petstore.requests[-1]
    assert (method, path) == ("POST", "/v1/pets")
    assert headers["X-Request-Source"] == "test"
    assert headers["Authorization"] == "Bearer t"
    # X-Request-Source went into a header, not the JSON body
    assert petstore.pets[1] == {"id": 1, "name": "Rex", "kind": "dog", "tag": "good"}

    batch = await reg.get("create_pets").invoke(
        {"body": [{"name": "Tom", "kind": "cat"},
                  {"name": "Tweety", "kind": "bird", "tag": "good"}]}
    )
    assert [p["id"] for p in batch] == [2, 3]
    listed = await reg.get("list_pets").invoke({"tag": "good", "limit": 5})
    assert [p["name"] for p in listed] == ["Rex", "Tweety"]
    assert await reg.get("get_pet").invoke({"pet_id": 2}) == {"id": 2, "name": "Tom", "kind": "cat"}
    assert await reg.get("delete_pet").invoke({"pet_id": 2}) is None
    assert 2 not in petstore.pets


async def test_http_errors_are_structured_failures(petstore: PetStore, petstore_spec: Path) -> None:
    tools = _tools(petstore_spec, petstore.base_url)
    with pytest.raises(ToolExecutionError) as info:
        await tools["get_pet"].invoke({"pet_id": 99})
    assert info.value.status == 404
    assert "HTTP 404 from GET /pets/{pet_id}" in str(info.value)
    assert "pet 99 not found" in str(info.value)
    result = await tools["get_pet"].run({"pet_id": 99})
    assert result.error is not None
    assert (result.error.type, result.error.status) == ("http_error", 404)


async def test_idempotency_header_is_sent_when_configured(
    petstore: PetStore, petstore_spec: Path
) -> None:
    tools = _tools(petstore_spec, petstore.base_url, idempotency_header="Idempotency-Key")
    assert tools["create_pet"].accepts_idempotency_key
    await tools["create_pet"].invoke({"name": "Kit", "kind": "cat"}, idempotency_key="run-1:4")
    assert petstore.requests[-1][2]["Idempotency-Key"] == "run-1:4"


async def test_shared_client_is_used(petstore: PetStore, petstore_spec: Path) -> None:
    async with httpx.AsyncClient(headers={"X-Client": "shared"}) as client:
        tools = _tools(petstore_spec, petstore.base_url, client=client)
        assert await tools["list_pets"].invoke({}) == []
    assert petstore.requests[-1][2]["X-Client"] == "shared"


async def test_unreachable_server_is_an_execution_error(petstore_spec: Path) -> None:
    tools = _tools(petstore_spec, "http://127.0.0.1:9/v1", timeout=2)
    result = await tools["list_pets"].run({})
    assert result.error is not None and result.error.type == "execution_error"
    assert "GET http://127.0.0.1:9/v1/pets failed" in result.error.message


def test_base_url_defaults_to_servers(petstore_spec: Path) -> None:
    (tool, *_) = openapi_tools(petstore_spec, operations=["get_pet"])
    assert tool.base_url == "http://petstore.example/v1"


def test_extensions_override_derived_metadata(tmp_path: Path, petstore_spec: Path) -> None:
    doc = yaml.safe_load(petstore_spec.read_text())
    doc["paths"]["/pets/{pet_id}"]["delete"]["x-tether-idempotent"] = True
    doc["paths"]["/pets/{pet_id}"]["delete"]["x-tether-timeout"] = 3
    doc["paths"]["/pets/{pet_id}"]["delete"]["x-tether-requires-approval"] = True
    (tool,) = openapi_tools(doc, "http://x", operations=["delete_pet"])
    assert tool.idempotent is True and tool.timeout == 3
    assert tool.requires_approval is True and tool.kind == "openapi"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(openapi="2.0"), "only OpenAPI 3.x is supported, found 'openapi: 2.0'"),
        (lambda d: d.pop("paths"), "has no 'paths' mapping"),
        (lambda d: d.pop("servers"), "no base URL"),
        (
            lambda d: d["paths"]["/pets"]["get"]["parameters"].append({"$ref": "#/nope/X"}),
            r"\$ref '#/nope/X' points to nothing",
        ),
        (
            lambda d: d["paths"]["/pets"]["get"]["parameters"].append({"$ref": "other.yaml#/X"}),
            "only local",
        ),
        (
            lambda d: d["paths"]["/pets"]["post"].update(operationId="list_pets"),
            "duplicate operationId 'list_pets'",
        ),
    ],
)
def test_bad_specs_fail_with_specific_errors(
    petstore_spec: Path, mutate: object, message: str
) -> None:
    doc = yaml.safe_load(petstore_spec.read_text())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(OpenAPIError, match=message):
        openapi_tools(doc)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(OpenAPIError, match="cannot read OpenAPI spec"):
        openapi_tools(tmp_path / "missing.yaml", "http://x")
