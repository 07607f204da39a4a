"""Tools from an OpenAPI 3 document: one tool per operation, called over HTTP with httpx.

Each operation's path/query/header/cookie parameters and its JSON request body become ONE
argument object (what a model can fill in). A JSON object body is flattened into that object when
its property names do not clash with parameter names; otherwise it is passed as ``body``.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import yaml

from tether.tools._base import Tool, coerce_arguments
from tether.tools._errors import (
    FieldError,
    OpenAPIError,
    ToolArgumentError,
    ToolExecutionError,
)

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
_OPENAPI_ONLY_KEYS = frozenset({"nullable", "xml", "externalDocs", "example", "discriminator"})


def load_spec(spec: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Read a spec (YAML or JSON file, or an already-parsed dict); return (doc, label)."""
    if isinstance(spec, dict):
        doc, label = spec, str(spec.get("info", {}).get("title", "openapi"))
    else:
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise OpenAPIError(f"cannot read OpenAPI spec {str(path)!r}: {e}") from e
        try:
            doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise OpenAPIError(f"OpenAPI spec {str(path)!r} is not valid YAML/JSON: {e}") from e
        label = path.name
    if not isinstance(doc, dict):
        raise OpenAPIError(f"OpenAPI spec {label!r} must be a mapping at the top level")
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        found = f"'openapi: {version}'" if version else "no 'openapi' field"
        raise OpenAPIError(
            f"OpenAPI spec {label!r}: only OpenAPI 3.x is supported, found {found}"
        )
    if not isinstance(doc.get("paths"), dict):
        raise OpenAPIError(f"OpenAPI spec {label!r} has no 'paths' mapping")
    return doc, label


class _Converter:
    """Resolves ``$ref``s and turns OpenAPI schema objects into JSON Schema (2020-12)."""

    def __init__(self, doc: dict[str, Any], label: str) -> None:
        self.doc = doc
        self.label = label
        self.defs: dict[str, Any] = {}

    def resolve(self, obj: Any, seen: frozenset[str] = frozenset()) -> Any:
        """Follow a top-level ``$ref`` (parameters, request bodies, schemas)."""
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if ref in seen:
                raise OpenAPIError(f"{self.label}: circular $ref {ref!r}")
            seen = seen | {ref}
            obj = self._pointer(ref)
        return obj

    def _pointer(self, ref: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise OpenAPIError(
                f"{self.label}: only local $refs ('#/...') are supported, found {ref!r}"
            )
        node: Any = self.doc
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise OpenAPIError(f"{self.label}: $ref {ref!r} points to nothing")
            node = node[part]
        return node

    def schema(self, s: Any) -> Any:
        """Convert one schema; component schemas become ``$defs`` (recursion stays finite)."""
        if isinstance(s, list):
            return [self.schema(x) for x in s]
        if not isinstance(s, dict):
            return s
        if "$ref" in s:
            ref = s["$ref"]
            prefix = "#/components/schemas/"
            if isinstance(ref, str) and ref.startswith(prefix):
                name = ref[len(prefix):]
                if name not in self.defs:
                    self.defs[name] = {}  # placeholder breaks cycles
                    self.defs[name] = self.schema(self._pointer(ref))
                return {"$ref": f"#/$defs/{name}"}
            return self.schema(self.resolve(s))
        out: dict[str, Any] = {}
        for key, value in s.items():
            if key in _OPENAPI_ONLY_KEYS or key.startswith("x-"):
                continue
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                out[key] = {k: self.schema(v) for k, v in value.items()}
            elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
                out[key] = self.schema(value)
            else:
                out[key] = copy.deepcopy(value)
        # OpenAPI 3.0 dialect → JSON Schema
        if s.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            elif "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if out.get(flag) is True and bound in out:
                out[flag] = out.pop(bound)
            elif out.get(flag) is False:
                del out[flag]
        if "example" in s and "examples" not in out:
            out["examples"] = [copy.deepcopy(s["example"])]
        return out


def _tool_name(op: dict[str, Any], method: str, path: str) -> str:
    raw = op.get("operationId") or f"{method}_{path}"
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(raw)).strip("_")
    return name[:64] or method


def _param_schema(conv: _Converter, param: dict[str, Any]) -> Any:
    if "schema" in param:
        return conv.schema(param["schema"])
    for media in (param.get("content") or {}).values():
        if isinstance(media, dict) and "schema" in media:
            return conv.schema(media["schema"])
    return {}


def _json_media(body: dict[str, Any]) -> dict[str, Any] | None:
    for ctype, media in (body.get("content") or {}).items():
        base = ctype.split(";")[0].strip().lower()
        if base == "application/json" or base.endswith("+json"):
            return media if isinstance(media, dict) else {}
    return None


class OpenAPITool(Tool):
    """One OpenAPI operation, called with httpx against a base URL."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        description: str,
        side_effect: str,
        idempotent: bool,
        timeout: float | None,
        retries: int,
        parameters: dict[str, Any],
        source: str,
        method: str,
        path: str,
        base_url: str,
        locations: dict[str, str],
        body_mode: str | None,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        idempotency_header: str | None = None,
        requires_approval: bool = False,
        critical: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            version=version,
            description=description,
            side_effect=side_effect,
            idempotent=idempotent,
            timeout=timeout,
            retries=retries,
            parameters=parameters,
            accepts_idempotency_key=idempotency_header is not None,
            source=source,
            requires_approval=requires_approval,
            critical=critical,
        )
        self.kind = "openapi"
        self.method = method.upper()
        self.path = path
        self.base_url = base_url
        #: argument name → ``path | query | header | cookie | body``
        self.locations = locations
        #: ``"flat"`` (body properties are top-level arguments), ``"body"`` (one ``body``
        #: argument) or ``None`` (no request body)
        self.body_mode = body_mode
        self.headers = dict(headers or {})
        self.client = client
        self.idempotency_header = idempotency_header
        jsonschema.Draft202012Validator.check_schema(parameters)
        self._validator = jsonschema.Draft202012Validator(parameters)

    def validate(self, arguments: Any) -> dict[str, Any]:
        data = coerce_arguments(self.name, arguments)
        errors: list[FieldError] = []
        for err in sorted(self._validator.iter_errors(data), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in err.absolute_path)
            if err.validator == "required" and isinstance(err.instance, dict):
                missing = [r for r in err.validator_value if r not in err.instance]
                for field in missing:
                    errors.append(FieldError(".".join(filter(None, [path, field])),
                                             "Field required"))
                continue
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                known = set((err.schema.get("properties") or {}).keys())
                for field in err.instance:
                    if field not in known:
                        errors.append(FieldError(
                            ".".join(filter(None, [path, field])),
                            "unexpected field; it is not a parameter of this tool",
                            err.instance[field],
                        ))
                continue
            errors.append(FieldError(path, err.message, err.instance))
        if errors:
            raise ToolArgumentError(self.name, errors)
        return data

    def _request_parts(
        self, args: dict[str, Any], idempotency_key: str | None
    ) -> tuple[str, dict[str, Any]]:
        url = self.path
        query: list[tuple[str, str]] = []
        headers = dict(self.headers)
        cookies: dict[str, str] = {}
        body: dict[str, Any] = {}
        raw_body: Any = None
        for key, value in args.items():
            where = self.locations.get(key)
            if where == "path":
                url = url.replace("{" + key + "}", quote(_scalar(value), safe=""))
            elif where == "query":
                items = value if isinstance(value, list) else [value]
                query.extend((key, _scalar(v)) for v in items if v is not None)
            elif where == "header":
                headers[key] = _scalar(value)
            elif where == "cookie":
                cookies[key] = _scalar(value)
            elif self.body_mode == "body" and key == "body":
                raw_body = value
            else:
                body[key] = value
        if idempotency_key is not None and self.idempotency_header:
            headers[self.idempotency_header] = idempotency_key
        kwargs: dict[str, Any] = {"params": query, "headers": headers}
        if cookies:
            kwargs["cookies"] = cookies
        if self.body_mode == "flat" and (body or self.method in ("POST", "PUT", "PATCH")):
            kwargs["json"] = body
        elif self.body_mode == "body" and raw_body is not None:
            kwargs["json"] = raw_body
        return url, kwargs

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        url, kwargs = self._request_parts(arguments, idempotency_key)
        full = self.base_url.rstrip("/") + "/" + url.lstrip("/")
        try:
            if self.client is not None:
                response = await self.client.request(self.method, full, **kwargs)
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.request(self.method, full, **kwargs)
        except httpx.HTTPError as e:
            raise ToolExecutionError(
                self.name, f"{self.method} {full} failed: {type(e).__name__}: {e}"
            ) from e
        if response.status_code >= 400:
            text = response.text
            if len(text) > 1000:
                text = text[:1000] + "..."
            raise ToolExecutionError(
                self.name,
                f"HTTP {response.status_code} from {self.method} {self.path}: {text}",
                status=response.status_code,
            )
        if not response.content:
            return None
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            return response.json()
        return response.text


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


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
) -> list[OpenAPITool]:
    """Build one tool per operation of an OpenAPI 3 document.

    ``base_url`` defaults to the first absolute ``servers`` URL. Side effects follow the HTTP
    method (GET/HEAD read, POST/PUT/PATCH write, DELETE destructive); only safe methods are
    idempotent by default. Per-operation overrides: ``x-tether-side-effect``,
    ``x-tether-idempotent``, ``x-tether-timeout``, ``x-tether-requires-approval``,
    ``x-tether-critical``. ``idempotency_header`` (e.g.
    ``"Idempotency-Key"``) sends the runtime's key so the server can deduplicate retries.
    ``operations`` restricts the import to those tool names.
    """
    doc, label = load_spec(spec)
    if base_url is None:
        for server in doc.get("servers") or []:
            url = server.get("url", "") if isinstance(server, dict) else ""
            if url.startswith(("http://", "https://")):
                base_url = url
                break
    if not base_url:
        raise OpenAPIError(
            f"OpenAPI spec {label!r}: no base URL; pass base_url (CLI: --openapi "
            "spec.yaml=http://host:port) or declare an absolute URL in 'servers'"
        )
    api_version = str((doc.get("info") or {}).get("version", "1"))
    tools: list[OpenAPITool] = []
    names: set[str] = set()
    for path, item in doc["paths"].items():
        conv0 = _Converter(doc, label)
        item = conv0.resolve(item)
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = _tool_name(op, method, path)
            if operations is not None and name not in operations:
                continue
            if name in names:
                raise OpenAPIError(f"OpenAPI spec {label!r}: duplicate operationId {name!r}")
            built = _build_operation(
                doc, label, path, method, item, op, name, api_version, base_url,
                headers=headers, client=client, timeout=timeout, retries=retries,
                idempotency_header=idempotency_header,
            )
            if built is not None:
                names.add(name)
                tools.append(built)
    if operations is not None:
        missing = sorted(set(operations) - names)
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
    conv = _Converter(doc, label)
    where = f"OpenAPI spec {label!r}, {method.upper()} {path}"
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
        p = conv.resolve(raw)
        if not isinstance(p, dict) or "name" not in p or "in" not in p:
            raise OpenAPIError(f"{where}: a parameter needs 'name' and 'in'")
        params[(p["name"], p["in"])] = p  # operation-level overrides path-level
    properties: dict[str, Any] = {}
    required: list[str] = []
    locations: dict[str, str] = {}
    for (pname, pin), p in params.items():
        if pin not in ("path", "query", "header", "cookie"):
            raise OpenAPIError(f"{where}: parameter {pname!r} has unknown location {pin!r}")
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
        target = body_schema
        if isinstance(target, dict) and "$ref" in target:
            target = conv.defs.get(target["$ref"].rsplit("/", 1)[-1], target)
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
        raise OpenAPIError(f"{where}: invalid schema: {e.message}") from e
