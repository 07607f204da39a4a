"""`OpenAPITool`, one OpenAPI operation as a `Tool`: it validates its argument object against the
operation's JSON Schema and executes a call as one HTTP request with httpx.

Kept apart from the builder (`_openapi.py`, which decides each tool's schema, argument locations
and side effect from the document) so the runtime half, what happens on every call,
reads on its own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
from referencing import Registry

from tether.tools._base import Tool, coerce_arguments
from tether.tools._errors import FieldError, ToolArgumentError, ToolExecutionError
from tether.tools._openapi_check import SchemaCheck
from tether.tools._openapi_http import MAX_RESPONSE_BYTES, decode, send
from tether.tools._openapi_wire import MAX_ARGUMENT_DEPTH, too_deep, wire_problem
from tether.tools._validated import validated_by
from tether.tools.network import async_client, guard_client

_NO_RETRIEVAL: Registry[Any] = Registry()

# A path parameter is one path segment. These values would not be one: HTTP clients and servers
# resolve dot segments (`/users/..` becomes `/`, an endpoint the spec does not have), and an
# empty segment can be collapsed into its neighbour. Everything else is percent-encoded (`/`,
# `%`, `?`, `#` included), so a value cannot change the path.
_NOT_A_SEGMENT = frozenset({"", ".", ".."})


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
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        schema_check: SchemaCheck | None = None,
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
        self.network = True
        self.method = method.upper()
        self.path = path
        self.base_url = base_url
        #: argument name → ``path | query | header | cookie | body``
        self.locations = locations
        #: ``"flat"`` (body properties are top-level arguments), ``"body"`` (one ``body``
        #: argument) or ``None`` (no request body)
        self.body_mode = body_mode
        self.headers = dict(headers or {})
        # a client passed in follows the egress policy too (each request and redirect hop)
        self.client = guard_client(client) if client is not None else None
        self.idempotency_header = idempotency_header
        self.max_response_bytes = max_response_bytes
        # a bad schema is an error now, not on a model's first call; an import shares one
        # `SchemaCheck`, so a component many operations reach is checked once
        (schema_check or SchemaCheck()).parameters(parameters)
        # an empty registry that retrieves nothing: jsonschema would otherwise fetch any remote
        # `$ref` over the network on each validation (the converter leaves none; this makes sure)
        self._validator = jsonschema.Draft202012Validator(parameters, registry=_NO_RETRIEVAL)

    def validate(self, arguments: Any) -> dict[str, Any]:
        if validated_by(arguments, self):  # this tool's own validated arguments: a plain copy
            return dict(arguments)
        data = coerce_arguments(self.name, arguments)
        if too_deep(data):
            raise ToolArgumentError(self.name, [FieldError("", (
                f"the arguments nest more than {MAX_ARGUMENT_DEPTH} levels deep; no operation "
                "takes that"))])
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
        for key, value in data.items():
            where = self.locations.get(key)
            if where == "path" and _scalar(value) in _NOT_A_SEGMENT:
                errors.append(FieldError(key, (
                    "a path parameter cannot be empty, '.' or '..': it would change the "
                    "endpoint; send the resource's identifier"), value))
            elif where in ("header", "cookie") and value is not None:
                problem = wire_problem(where, _scalar(value))
                if problem:
                    errors.append(FieldError(key, problem, value))
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
                if value is not None:
                    headers[key] = _scalar(value)
            elif where == "cookie":
                if value is not None:
                    cookies[key] = _scalar(value)
            elif self.body_mode == "body" and key == "body":
                raw_body = value
            else:
                body[key] = value
        if idempotency_key is not None and self.idempotency_header:
            headers[self.idempotency_header] = idempotency_key
        if cookies:  # one header, built here: values were checked to be single cookie values
            pairs = "; ".join(f"{k}={v}" for k, v in cookies.items())
            old = headers.pop("Cookie", None) or headers.pop("cookie", None)
            headers["Cookie"] = f"{old}; {pairs}" if old else pairs
        kwargs: dict[str, Any] = {"params": query, "headers": headers}
        if self.body_mode == "flat" and (body or self.method in ("POST", "PUT", "PATCH")):
            kwargs["json"] = body
        elif self.body_mode == "body" and raw_body is not None:
            kwargs["json"] = raw_body
        return url, kwargs

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        url, kwargs = self._request_parts(arguments, idempotency_key)
        full = self.base_url.rstrip("/") + "/" + url.lstrip("/")
        sent = httpx.URL(full).raw_path.decode("ascii")
        if sent != full[len(full) - len(sent):]:
            # never reached with encoded segments; if the client ever rewrites a path, the call
            # would reach an endpoint that is not this operation
            raise ToolExecutionError(self.name, (
                f"refused: the HTTP client would send {sent!r} for {url!r}, not the "
                f"operation's path {self.path!r}"))
        try:
            if self.client is not None:
                response, body = await send(
                    self.name, self.client, self.method, full, follow=self.client.follow_redirects,
                    max_bytes=self.max_response_bytes, **kwargs)
            else:
                async with async_client(timeout=self.timeout, follow_redirects=False) as client:
                    response, body = await send(
                        self.name, client, self.method, full, follow=False,
                        max_bytes=self.max_response_bytes, **kwargs)
        except httpx.HTTPError as e:
            raise ToolExecutionError(
                self.name, f"{self.method} {full} failed: {type(e).__name__}: {e}"
            ) from e
        status = response.status_code
        if status >= 400:
            text = body.decode("utf-8", errors="replace")
            if len(text) > 1000:
                text = text[:1000] + "..."
            raise ToolExecutionError(
                self.name, f"HTTP {status} from {self.method} {self.path}: {text}", status=status
            )
        if 300 <= status < 400 and status != 304:
            # not followed (redirects are off for this client): nothing says the operation ran
            raise ToolExecutionError(self.name, (
                f"HTTP {status} from {self.method} {self.path}: the server redirects to "
                f"{response.headers.get('location', '(no Location)')!r}, which this tool does "
                "not follow; the operation may not have taken place"), status=status)
        return decode(self.name, self.method, self.path, response, body)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
