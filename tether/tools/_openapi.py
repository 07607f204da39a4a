"""Tools from an OpenAPI 3 document: one tool per operation, called over HTTP with httpx.

Each operation's path/query/header/cookie parameters and its JSON request body become ONE
argument object (what a model can fill in). A JSON object body is flattened into that object when
its property names do not clash with parameter names; otherwise it is passed as ``body``.

This module turns operations into tools (`openapi_tools`). Reading the document and converting
its schemas is in `_openapi_spec.py`; the tool itself (validation, the HTTP call) is in
`_openapi_tool.py`. Their names are re-exported here, where they have always been imported from.
A spec and the server are both untrusted: `_openapi_yaml.py` and `_openapi_limits.py` bound what a
document may be, `_openapi_wire.py` what an argument may put on the wire, `_openapi_http.py` what
a response may do (its size, its redirects), `_openapi_fetch.py` a spec fetched from a URL.
`_openapi_check.py` checks the tools' schemas against the meta-schema, each distinct piece once
per import (large specs share a few hundred components among thousands of operations).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from tether.tools._errors import OpenAPIError
from tether.tools._openapi_check import SchemaCheck, where_in_schema
from tether.tools._openapi_http import MAX_RESPONSE_BYTES
from tether.tools._openapi_spec import _OPENAPI_ONLY_KEYS as _OPENAPI_ONLY_KEYS
from tether.tools._openapi_spec import Components
from tether.tools._openapi_spec import _Converter as _Converter
from tether.tools._openapi_spec import load_spec as load_spec
from tether.tools._openapi_tool import OpenAPITool as OpenAPITool
from tether.tools._openapi_tool import _scalar as _scalar
from tether.tools._openapi_wire import TOKEN

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SIDE_EFFECT = {
    "get": "read",
    "head": "read",
    "options": "read",
    "trace": "read",
    "post": "write",
    "put": "write",
    "patch": "write",
    "delete": "destructive",
}
_SAFE_METHODS = frozenset({"get", "head", "options", "trace"})
_SPEC_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_TRANSPORT_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "cookie", "proxy-authorization", "proxy-connection",
})


def _tool_name(op: dict[str, Any], method: str, path: str) -> str:
    raw = op.get("operationId") or f"{method}_{path}"
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(raw)).strip("_")
    return name[:64] or method


def _describe(op: dict[str, Any], method: str, path: str) -> str:
    """The operation as its author knows it, for messages about the name it got."""
    op_id = op.get("operationId")
    shown = f" (operationId {str(op_id)[:80]!r})" if op_id is not None else ""
    return f"{method.upper()} {path}{shown}"


def _param_schema(conv: _Converter, param: dict[str, Any]) -> Any:
    if "schema" in param:
        return conv.schema(param["schema"])
    for media in (param.get("content") or {}).values():
        if isinstance(media, dict) and "schema" in media:
            return conv.schema(media["schema"])
    return {}


def _header_not_for_model(name: str, configured: dict[str, str] | None) -> str | None:
    """Why a header parameter is not an argument a model fills in (None: it is one)."""
    lower = name.lower()
    if lower in _SPEC_IGNORED_HEADERS:
        return ("OpenAPI says header parameters named Accept, Content-Type or Authorization "
                "are ignored (the media type and the security scheme decide them)")
    if lower in _TRANSPORT_HEADERS:
        return ("it frames or routes the request (the HTTP client sets it); a model-chosen "
                "value would change where or how the request is delivered")
    if any(lower == k.lower() for k in configured or {}):
        return "it is set by openapi_tools(headers=...), which a model must not override"
    return None


def _param_list(obj: dict[str, Any], where: str) -> list[Any]:
    params = obj.get("parameters") or []
    if not isinstance(params, list):
        raise OpenAPIError(f"{where}: 'parameters' must be a list, not {type(params).__name__}")
    return params


def _check_extensions(where: str, op: dict[str, Any]) -> None:
    """Tether's own extensions govern the call, so a wrong type is an error, not a guess:
    ``bool("false")`` is True, and would mark a non-idempotent call safe to repeat."""
    for key in ("x-tether-idempotent", "x-tether-requires-approval", "x-tether-critical"):
        if key in op and not isinstance(op[key], bool):
            raise OpenAPIError(
                f"{where}: {key} must be true or false (unquoted), not {op[key]!r}"
            )
    if "x-tether-timeout" in op:
        t = op["x-tether-timeout"]
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
            raise OpenAPIError(
                f"{where}: x-tether-timeout must be a number of seconds, not {t!r}"
            )


def _json_media(body: dict[str, Any]) -> dict[str, Any] | None:
    for ctype, media in (body.get("content") or {}).items():
        base = ctype.split(";")[0].strip().lower()
        if base == "application/json" or base.endswith("+json"):
            return media if isinstance(media, dict) else {}
    return None

def openapi_tools(
    spec: str | Path | dict[str, Any],
    base_url: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: float | None = 30.0,
    retries: int = 0,
    idempotency_header: str | None = None,
    operations: list[str] | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> list[OpenAPITool]:
    """Build one tool per operation of an OpenAPI 3 document.

    ``base_url`` defaults to the first absolute ``servers`` URL. Side effects follow the HTTP
    method (GET/HEAD read, POST/PUT/PATCH write, DELETE destructive); only safe methods are
    idempotent by default. Per-operation overrides: ``x-tether-side-effect``,
    ``x-tether-idempotent``, ``x-tether-timeout``, ``x-tether-requires-approval``,
    ``x-tether-critical``. ``idempotency_header`` (e.g.
    ``"Idempotency-Key"``) sends the runtime's key so the server can deduplicate retries.
    ``operations`` restricts the import to those tool names. ``max_response_bytes`` bounds
    a response body (decompressed); a larger one is an error, not read into memory.
    """
    doc, label = load_spec(spec)
    if base_url is None:
        for server in doc.get("servers") or []:
            url = server.get("url", "") if isinstance(server, dict) else ""
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                base_url = url
                break
    if not base_url:
        raise OpenAPIError(
            f"OpenAPI spec {label!r}: no base URL; pass base_url (CLI: --openapi "
            "spec.yaml=http://host:port) or declare an absolute URL in 'servers'"
        )
    try:
        return _build_all(
            doc, label, base_url, operations, headers=headers, client=client, timeout=timeout,
            retries=retries, idempotency_header=idempotency_header,
            max_response_bytes=max_response_bytes,
        )
    except RecursionError:  # the limits on the document should prevent this; never a traceback
        raise OpenAPIError(
            f"OpenAPI spec {label!r}: its schemas nest too deeply to convert; flatten them or "
            "move nested schemas to '#/components/schemas'"
        ) from None


def _build_all(
    doc: dict[str, Any],
    label: str,
    base_url: str,
    operations: list[str] | None,
    **options: Any,
) -> list[OpenAPITool]:
    api_version = str((doc.get("info") or {}).get("version", "1"))
    tools: list[OpenAPITool] = []
    names: dict[str, str] = {}  # tool name -> the operation it came from
    # shared by the operations: each component is converted and checked once per import
    options.update(components=Components(), schema_check=SchemaCheck())
    for path, item in doc["paths"].items():
        conv0 = _Converter(doc, f"OpenAPI spec {label!r}, path {path!r}")
        item = conv0.resolve(item)
        if item is None:  # an empty path item: no operations to import
            continue
        if not isinstance(item, dict):
            raise OpenAPIError(
                f"OpenAPI spec {label!r}: path {path!r} must map to a path item (a mapping of "
                f"HTTP methods to operations), not {type(item).__name__}"
            )
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            where = f"OpenAPI spec {label!r}, {method.upper()} {path}"
            if not isinstance(op, dict):
                raise OpenAPIError(
                    f"{where}: an operation must be a mapping, not {type(op).__name__}"
                )
            name = _tool_name(op, method, path)
            if operations is not None and name not in operations:
                continue
            this = _describe(op, method, path)
            if name in names:
                raise OpenAPIError(
                    f"OpenAPI spec {label!r}: duplicate operationId {name!r}: {names[name]} and "
                    f"{this} both become tool {name!r} (tool names keep letters, digits, '_' "
                    "and '-', at most 64 characters); give them distinct operationIds"
                )
            built = _build_operation(
                doc, label, path, method, item, op, name, api_version, base_url, **options
            )
            if built is not None:
                names[name] = this
                tools.append(built)
    if operations is not None:
        missing = sorted(set(operations) - set(names))
        if missing:
            raise OpenAPIError(f"OpenAPI spec {label!r}: no operations named {missing}")
    return tools


def _build_operation(
    doc: dict[str, Any],
    label: str,
    path: str,
    method: str,
    item: dict[str, Any],
    op: dict[str, Any],
    name: str,
    api_version: str,
    base_url: str,
    **options: Any,
) -> OpenAPITool | None:
    where = f"OpenAPI spec {label!r}, {method.upper()} {path}"
    conv = _Converter(doc, where, options.pop("components"))
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*_param_list(item, where), *_param_list(op, where)]:
        p = conv.resolve(raw)
        if not isinstance(p, dict) or "name" not in p or "in" not in p:
            raise OpenAPIError(f"{where}: a parameter needs 'name' and 'in'")
        if not isinstance(p["name"], str) or not p["name"] or not isinstance(p["in"], str):
            raise OpenAPIError(
                f"{where}: parameter 'name' and 'in' must be non-empty strings, found "
                f"name={p['name']!r}, in={p['in']!r}"
            )
        params[(p["name"], p["in"])] = p  # operation-level overrides path-level
    properties: dict[str, Any] = {}
    required: list[str] = []
    locations: dict[str, str] = {}
    for (pname, pin), p in params.items():
        if pin not in ("path", "query", "header", "cookie"):
            raise OpenAPIError(f"{where}: parameter {pname!r} has unknown location {pin!r}")
        if pin in ("header", "cookie") and not TOKEN.fullmatch(pname):
            raise OpenAPIError(
                f"{where}: {pin} parameter name {pname!r} is not a valid {pin} name (letters, "
                "digits and !#$%&'*+-.^_`|~ only)"
            )
        if pin == "header" and (why := _header_not_for_model(pname, options.get("headers"))):
            warnings.warn(f"{where}: header parameter {pname!r} left out: {why}", stacklevel=4)
            continue
        if pname in locations:
            raise OpenAPIError(
                f"{where}: parameter name {pname!r} is used in both {locations[pname]} and {pin}"
            )
        schema = _param_schema(conv, p)
        if p.get("description") and isinstance(schema, dict):
            schema = {**schema, "description": p["description"]}
        properties[pname] = schema
        locations[pname] = pin
        if p.get("required") or pin == "path":
            required.append(pname)
    body_mode: str | None = None
    if "requestBody" in op:
        body = conv.resolve(op["requestBody"])
        media = _json_media(body) if isinstance(body, dict) else None
        if media is None:
            warnings.warn(
                f"{where}: skipped, only JSON request bodies are supported", stacklevel=3
            )
            return None
        body_required = bool(body.get("required"))
        body_schema = conv.schema(media.get("schema") or {})
        target = conv.lookup(body_schema)
        flat_ok = (
            isinstance(target, dict)
            and isinstance(target.get("properties"), dict)
            and not target.get("additionalProperties")
            and not set(target["properties"]) & set(properties)
            and not any(k in target for k in ("allOf", "anyOf", "oneOf"))
        )
        if flat_ok:
            body_mode = "flat"
            for k, v in target["properties"].items():
                properties[k] = v
                locations[k] = "body"
            if body_required:
                required.extend(r for r in target.get("required", []) if r not in required)
        else:
            if "body" in properties:
                raise OpenAPIError(f"{where}: a parameter named 'body' clashes with the body")
            body_mode = "body"
            properties["body"] = body_schema
            locations["body"] = "body"
            if body_required:
                required.append("body")
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        parameters["required"] = required
    if conv.defs:
        parameters["$defs"] = conv.defs
    summary = str(op.get("summary") or "").strip()
    details = str(op.get("description") or "").strip()
    description = "\n\n".join(x for x in (summary, details) if x) or f"{method.upper()} {path}"
    side_effect = op.get("x-tether-side-effect", _SIDE_EFFECT[method])
    idempotent = op.get("x-tether-idempotent", method in _SAFE_METHODS)
    timeout = op.get("x-tether-timeout", options.pop("timeout"))
    _check_extensions(where, op)
    try:
        return OpenAPITool(
            name=name,
            version=api_version,
            description=description,
            side_effect=side_effect,
            idempotent=bool(idempotent),
            timeout=timeout,
            parameters=parameters,
            source=f"openapi:{label}#{name}",
            method=method,
            path=path,
            base_url=base_url,
            locations=locations,
            body_mode=body_mode,
            requires_approval=bool(op.get("x-tether-requires-approval", False)),
            critical=bool(op.get("x-tether-critical", False)),
            **options,
        )
    except jsonschema.SchemaError as e:
        raise OpenAPIError(
            f"{where}: invalid schema: {e.message} (in {where_in_schema(e.path)})"
        ) from e
