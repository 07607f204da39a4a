"""OpenAPI tools against hostile specs, hostile servers and hostile arguments.

Every attack is real: spec files on disk or served over HTTP, a real server on 127.0.0.1
(`openapi_hostile_server`) that records what reached it, so "nothing was sent" and "the key did
not leave" are checked on the wire. SSRF through egress rules and path parameters that change the
endpoint are covered in tests/guards/test_hostile_network.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.tools import (
    OpenAPIError,
    ToolArgumentError,
    ToolExecutionError,
    ToolTimeoutError,
    openapi_tools,
)
from tether.tools._lock import OpenAPISource, ToolSources, load_sources

from .openapi_hostile_server import Hostile, serve

DATA = Path(__file__).parent / "data" / "openapi_hostile"
S = {"type": "string"}


@pytest.fixture
def api() -> Iterator[Hostile]:
    with serve() as server:
        yield server


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"openapi": "3.0.3", "info": {"title": "hostile", "version": "1"},
                           "paths": paths}
    if schemas is not None:
        doc["components"] = {"schemas": schemas}
    return doc


def _post(schema: Any, name: str = "send") -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": schema}}}
    return {"/send": {"post": {"operationId": name, "requestBody": body}}}


def _gets(*names: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {f"/{n}": {"get": {"operationId": n.replace("-", "_"),
                              "parameters": parameters or []}} for n in names}


# -- hostile spec documents ---------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    started = time.monotonic()
    with pytest.raises(OpenAPIError, match=r"too large: more than 3,000,000 values once YAML "
                       r"aliases are expanded \(reached at paths\./laugh\.get"):
        openapi_tools(DATA / "alias_bomb.yaml", "http://127.0.0.1:1")
    assert time.monotonic() - started < 5


def test_a_yaml_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(OpenAPIError, match=r"paths\./loop\.get\.parameters\[0\]\.schema\.items "
                       "contains itself"):
        openapi_tools(DATA / "self_alias.yaml", "http://127.0.0.1:1")


def test_documents_nested_without_end_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(OpenAPIError, match="nests too deeply to parse"):
        openapi_tools(deep, "http://127.0.0.1:1")
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(150):  # parses, but every recursive consumer downstream overflows
        schema = {"type": "array", "items": schema}
    with pytest.raises(OpenAPIError, match=r"nests more than 100 levels deep \(at paths\./send"):
        openapi_tools(_doc(_post(schema)), "http://127.0.0.1:1")


def test_a_ref_cycle_outside_components_is_named() -> None:
    here = "#/paths/~1send/post/requestBody/content/application~1json/schema"
    schema = {"type": "object", "properties": {"next": {"$ref": here}}}
    with pytest.raises(OpenAPIError, match=r"POST /send: circular \$ref .* only schemas under "
                       "'#/components/schemas/' may refer to themselves"):
        openapi_tools(_doc(_post(schema)), "http://127.0.0.1:1")


def test_cycles_through_components_stay_finite() -> None:
    schemas = {"Node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        "all": {"allOf": [{"$ref": "#/components/schemas/Node"}]}}}}
    (tool,) = openapi_tools(_doc(_post({"$ref": "#/components/schemas/Node"}), schemas),
                            "http://127.0.0.1:1")
    assert tool.validate({"kids": [{"kids": []}]}) == {"kids": [{"kids": []}]}
    with pytest.raises(ToolArgumentError, match=r"kids.0.kids"):
        tool.validate({"kids": [{"kids": 3}]})


@pytest.mark.parametrize("keyword", ["prefixItems", "if", "contains", "dependentSchemas",
                                     "propertyNames", "unevaluatedProperties"])
def test_a_remote_ref_in_any_schema_keyword_is_refused_and_never_fetched(
    api: Hostile, keyword: str
) -> None:
    remote = {"$ref": f"{api.base}/schema.json"}
    value: Any = {"prefixItems": [remote], "dependentSchemas": {"a": remote}}.get(keyword, remote)
    schema = {"type": "object", "properties": {"a": {keyword: value}}}
    with pytest.raises(OpenAPIError, match=r"only local \$refs .* never fetched"):
        (tool,) = openapi_tools(_doc(_post(schema)), "http://127.0.0.1:1")
        tool.validate({"a": ["x"]})  # where jsonschema used to fetch it, on each validation
    assert api.seen == []


def test_local_refs_in_every_schema_keyword_resolve() -> None:
    schema = {"type": "array", "prefixItems": [{"$ref": "#/components/schemas/Id"}]}
    (tool,) = openapi_tools(_doc(_post(schema), {"Id": {"type": "integer"}}), "http://x")
    assert tool.validate({"body": [1]}) == {"body": [1]}
    with pytest.raises(ToolArgumentError, match=r"body.0: 'x' is not of type 'integer'"):
        tool.validate({"body": ["x"]})


@pytest.mark.parametrize("name", ["a/b", "a~b", "a%41", "a b"])
def test_component_names_that_need_escaping_still_validate(name: str) -> None:
    pointer = name.replace("~", "~0").replace("/", "~1")
    schemas = {name: {"type": "object", "properties": {"n": {"type": "integer"}}}}
    schema = {"type": "array", "items": {"$ref": f"#/components/schemas/{pointer}"}}
    (tool,) = openapi_tools(_doc(_post(schema), schemas), "http://x")
    assert tool.validate({"body": [{"n": 1}]}) == {"body": [{"n": 1}]}
    with pytest.raises(ToolArgumentError, match=r"body.0.n: 'x' is not of type 'integer'"):
        tool.validate({"body": [{"n": "x"}]})


def test_a_ref_may_point_into_a_list() -> None:
    paths = _gets("a", parameters=[{"name": "q", "in": "query", "schema": S}])
    paths["/b"] = {"get": {"operationId": "b",
                           "parameters": [{"$ref": "#/paths/~1a/get/parameters/0"}]}}
    tools = {t.name: t for t in openapi_tools(_doc(paths), "http://x")}
    assert tools["b"].parameters["properties"]["q"] == S


def test_a_spec_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"openapi: 3.0.0\ninfo: {title: Caf\xe9, version: '1'}\npaths: {}\n")
    with pytest.raises(OpenAPIError, match=r"latin1.yaml' is not UTF-8 text \(byte 32: b'\\xe9'"):
        openapi_tools(spec, "http://x")


def test_a_swagger_2_document_is_named_with_what_to_do() -> None:
    with pytest.raises(OpenAPIError, match=r"is a Swagger 2.0 document; .* convert it first"):
        openapi_tools({"swagger": "2.0", "info": {"title": "old"}, "paths": {}}, "http://x")


def test_a_spec_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(OpenAPIError, match="a file path or a parsed mapping, not list"):
        openapi_tools([1, 2], "http://x")  # type: ignore[arg-type]


@pytest.mark.parametrize(("paths", "message"), [
    ({"/a": ["get"]}, "path '/a' must map to a path item .* not list"),
    ({"/a": {"get": "list things"}}, "GET /a: an operation must be a mapping, not str"),
    ({"/a": {"get": {"parameters": {"name": "q"}}}}, "GET /a: 'parameters' must be a list"),
    ({"/a": {"get": {"parameters": [{"name": 5, "in": "query"}]}}},
     "GET /a: parameter 'name' and 'in' must be non-empty strings, found name=5"),
    ({"/a": {"get": {"parameters": [{"name": "X Key", "in": "header"}]}}},
     "GET /a: header parameter name 'X Key' is not a valid header name"),
    ({"/a": {"post": {"x-tether-idempotent": "false"}}},
     "POST /a: x-tether-idempotent must be true or false \\(unquoted\\), not 'false'"),
    ({"/a": {"get": {"x-tether-timeout": "30s"}}},
     "GET /a: x-tether-timeout must be a number of seconds, not '30s'"),
])
def test_malformed_operations_are_errors_not_skipped_or_guessed(
    paths: dict[str, Any], message: str
) -> None:
    with pytest.raises(OpenAPIError, match=message):
        openapi_tools(_doc(paths), "http://x")


def test_an_info_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(OpenAPIError, match="'info' must be a mapping"):
        openapi_tools({**_doc({}), "info": ["title"]}, "http://x")


def test_names_that_collide_after_sanitising_name_both_operations() -> None:
    paths = {"/pets": {"get": {"operationId": "get pet"}, "put": {"operationId": "get.pet"}}}
    with pytest.raises(OpenAPIError, match=r"duplicate operationId 'get_pet': GET /pets "
                       r"\(operationId 'get pet'\) and PUT /pets \(operationId 'get.pet'\) "
                       "both become tool 'get_pet'"):
        openapi_tools(_doc(paths), "http://x")


# -- hostile servers ----------------------------------------------------------------------------


async def _call(api: Hostile, path: str, args: dict[str, Any] | None = None,
                parameters: list[dict[str, Any]] | None = None, **options: Any) -> Any:
    (tool,) = openapi_tools(_doc(_gets(path.strip("/"), parameters=parameters)), api.base,
                            **options)
    return await tool.invoke(args or {})


async def test_a_huge_response_is_not_read_into_memory(api: Hostile) -> None:
    with pytest.raises(ToolExecutionError, match=r"larger than 10,485,760 bytes "
                       r"\(max_response_bytes\)") as info:
        await _call(api, "/huge", timeout=20)
    assert info.value.status == 200
    for _ in range(100):  # the server notices the hang-up on its next write
        if api.written:
            break
        time.sleep(0.05)
    (sent,) = api.written
    assert sent < 40 * 1024 * 1024  # the client hung up long before the 80 MiB end


async def test_a_gzip_bomb_is_not_inflated_whole(api: Hostile) -> None:
    with pytest.raises(ToolExecutionError, match=r"larger than 1,000,000 bytes"):
        await _call(api, "/gzip", max_response_bytes=1_000_000, timeout=20)
    with pytest.raises(ToolExecutionError, match=r"larger than 10,485,760 bytes"):
        await _call(api, "/gzip", timeout=20)  # the default bound too: 64 MiB inflated


@pytest.mark.parametrize(("path", "why"), [
    ("/bad-json", "JSONDecodeError: Expecting property name"),
    ("/latin1-json", "UnicodeDecodeError"),
    ("/deep-json", "it nests too deeply"),
    ("/nan-json", "ValueError: NaN is not a JSON value"),  # was {"price": None}, silently
    ("/inf-json", "ValueError: the number 1e999 is too large for a 64-bit float"),
])
async def test_a_body_that_lies_about_being_json_is_a_clear_error(
    api: Hostile, path: str, why: str
) -> None:
    with pytest.raises(ToolExecutionError, match=f"HTTP 200 from GET {path}: the body is "
                       f"declared application/json but is not valid JSON \\({why}.*The "
                       "operation ran") as info:
        await _call(api, path)
    assert info.value.status == 200


async def test_a_redirect_the_tool_does_not_follow_is_not_an_empty_success(api: Hostile) -> None:
    with pytest.raises(ToolExecutionError, match=f"HTTP 302 from GET /away: the server "
                       f"redirects to '{api.other_origin}/landing', which this tool does not "
                       "follow") as info:
        await _call(api, "/away")
    assert info.value.status == 302
    assert api.requests_to("/landing") == []


async def test_credentials_do_not_follow_a_redirect_to_another_origin(api: Hostile) -> None:
    secrets = {"Authorization": "Bearer tok-1", "X-API-Key": "key-2"}
    cookie = [{"name": "session", "in": "cookie", "schema": S}]
    async with httpx.AsyncClient(follow_redirects=True, headers={"X-Client-Key": "key-3"}) as c:
        result = await _call(api, "/away", {"session": "sess-4"}, cookie, headers=secrets,
                             client=c)
    assert result == {"host": "localhost"}  # the redirect was followed
    (first,) = api.requests_to("/away")
    assert first.headers["X-API-Key"] == "key-2" and first.headers["Cookie"] == "session=sess-4"
    (landing,) = api.requests_to("/landing")
    sent = json.dumps(landing.headers)
    for secret in ("tok-1", "key-2", "key-3", "sess-4"):
        assert secret not in sent, f"{secret} leaked to {api.other_origin}: {sent}"


async def test_a_same_origin_redirect_keeps_credentials_and_body(api: Hostile) -> None:
    body = {"content": {"application/json": {"schema": {"type": "object",
                                                         "properties": {"n": S}}}}}
    doc = _doc({"/here": {"post": {"operationId": "here", "requestBody": body}}})
    async with httpx.AsyncClient(follow_redirects=True) as c:
        (tool,) = openapi_tools(doc, api.base, headers={"X-API-Key": "key-2"}, client=c)
        assert await tool.invoke({"n": "1"}) == {"host": "127.0.0.1"}
    (landing,) = api.requests_to("/landing")
    assert (landing.method, landing.body) == ("POST", b'{"n":"1"}')  # 307 keeps both
    assert landing.headers["X-API-Key"] == "key-2"


async def test_a_redirect_loop_ends(api: Hostile) -> None:
    async with httpx.AsyncClient(follow_redirects=True, max_redirects=5) as c:
        with pytest.raises(ToolExecutionError, match="more than 5 redirects"):
            await _call(api, "/loop", client=c)
    assert len(api.requests_to("/loop")) == 6


async def test_a_dripping_response_is_bounded_by_the_tool_deadline(api: Hostile) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError):
        await _call(api, "/drip", timeout=1)
    assert time.monotonic() - started < 3


# -- argument smuggling -------------------------------------------------------------------------


async def test_a_cookie_value_cannot_add_another_cookie(api: Hostile) -> None:
    cookie = [{"name": "session", "in": "cookie", "schema": S}]
    with pytest.raises(ToolArgumentError, match="session: a cookie value may only hold"):
        await _call(api, "/me", {"session": "abc; admin=1"}, cookie)
    assert api.seen == []
    assert await _call(api, "/me", {"session": "abc"}, cookie) == {"host": "127.0.0.1"}
    assert api.seen[0].headers["Cookie"] == "session=abc"


@pytest.mark.parametrize("value", ["a\r\nX-Admin: 1", "a\nX-Admin: 1", "caf\u00e9", "a\x00b"])
async def test_a_header_value_cannot_break_out_of_its_header(api: Hostile, value: str) -> None:
    header = [{"name": "X-Tag", "in": "header", "schema": S}]
    with pytest.raises(ToolArgumentError, match="X-Tag: a header value may only hold visible "
                       "ASCII"):
        await _call(api, "/tag", {"X-Tag": value}, header)
    assert api.seen == []


def test_arguments_nested_without_end_are_an_argument_error() -> None:
    schemas = {"Tree": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}
    (tool,) = openapi_tools(_doc(_post({"$ref": "#/components/schemas/Tree"}), schemas),
                            "http://x")
    deep: list[Any] = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(ToolArgumentError, match="nest more than 100 levels deep"):
        tool.validate({"body": deep})


# -- specs fetched from a URL (tether tools lock / check) ---------------------------------------


@pytest.mark.parametrize(("path", "message"), [
    ("/huge-spec", "is larger than 67,108,864 bytes; not read further"),
    ("/deep-spec", "nests too deeply to parse"),
])
def test_a_spec_url_is_read_within_bounds(api: Hostile, path: str, message: str) -> None:
    with pytest.raises(OpenAPIError, match=message):
        load_sources(ToolSources(openapi=[OpenAPISource(api.base + path)]))


@pytest.mark.parametrize(("name", "why"), [
    ("Authorization", "OpenAPI says header parameters named Accept, Content-Type or "
                      "Authorization are ignored"),
    ("Host", "it frames or routes the request"),
    ("content-length", "it frames or routes the request"),
    ("x-api-key", r"it is set by openapi_tools\(headers=...\)"),
])
async def test_a_model_cannot_set_credential_or_transport_headers(
    api: Hostile, name: str, why: str
) -> None:
    header = [{"name": name, "in": "header", "schema": S}]
    with pytest.warns(UserWarning, match=f"GET /h: header parameter '{name}' left out: {why}"):
        (tool,) = openapi_tools(_doc(_gets("h", parameters=header)), api.base,
                                headers={"X-API-Key": "key-2"})
    assert name not in tool.parameters["properties"]
    with pytest.raises(ToolArgumentError, match="unexpected field"):
        await tool.invoke({name: "chosen-by-the-model"})
    assert await tool.invoke({}) == {"host": "127.0.0.1"}
    assert "chosen-by-the-model" not in json.dumps(api.seen[0].headers)
    assert api.seen[0].headers["X-API-Key"] == "key-2"


def test_yaml_is_read_as_the_json_data_it_writes() -> None:
    (tool,) = openapi_tools(DATA / "yaml_1_1.yaml", "http://x")
    assert list(tool.parameters["properties"]) == ["day", "no", "on", "200"]
    assert tool.parameters["properties"]["day"]["enum"] == ["2024-06-21", "2024-12-21"]
    args = {"day": "2024-06-21", "no": "NO", "on": True, "200": 1}
    assert tool.validate(args) == args
    assert tool.schema_hash.startswith("sha256:")  # the lock can hash it (int keys could not)


@pytest.mark.parametrize(("value", "message"), [
    ("!!binary aGVsbG8=", "the YAML tag 'tag:yaml.org,2002:binary' has no JSON value"),
    ("!!set {a, b}", "the YAML tag 'tag:yaml.org,2002:set' has no JSON value"),
    (".nan", r"the value at paths\./a\.get\.parameters\[0\]\.schema\.default is nan \(float\), "
             "which JSON cannot hold"),
])
def test_yaml_values_json_cannot_hold_are_named(tmp_path: Path, value: str, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n"
                    "      parameters:\n        - name: q\n          in: query\n"
                    f"          schema: {{type: string, default: {value}}}\n")
    with pytest.raises(OpenAPIError, match=message):
        openapi_tools(spec, "http://x")
