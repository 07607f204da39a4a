"""Reading an OpenAPI 3 document: loading and checking the file, resolving local ``$ref``s, and
converting OpenAPI schema objects (3.0 dialect included) into JSON Schema 2020-12.

Kept apart from the operation → tool builder (`_openapi.py`) because it knows nothing of tools:
it only turns a document into JSON-Schema-shaped pieces the builder assembles.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from tether.tools._errors import OpenAPIError
from tether.tools._openapi_limits import check_document
from tether.tools._openapi_yaml import load_yaml

_OPENAPI_ONLY_KEYS = frozenset({"nullable", "xml", "externalDocs", "example", "discriminator"})


def load_spec(spec: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Read a spec (YAML or JSON file, or an already-parsed dict); return (doc, label)."""
    if isinstance(spec, dict):
        info = spec.get("info")
        title = info.get("title") if isinstance(info, dict) else None
        doc, label = spec, str(title or "openapi")
    elif isinstance(spec, str | Path):
        doc, label = _read(Path(spec))
    else:
        raise OpenAPIError(
            f"an OpenAPI spec is a file path or a parsed mapping, not {type(spec).__name__}"
        )
    if not isinstance(doc, dict):
        raise OpenAPIError(
            f"OpenAPI spec {label!r} must be a mapping at the top level, not "
            f"{type(doc).__name__}"
        )
    check_document(doc, label)
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        if "swagger" in doc:
            raise OpenAPIError(
                f"OpenAPI spec {label!r} is a Swagger {doc['swagger']} document; only OpenAPI "
                "3.x is supported: convert it first (e.g. `npx swagger2openapi spec.yaml`)"
            )
        found = f"'openapi: {version}'" if version else "no 'openapi' field"
        raise OpenAPIError(
            f"OpenAPI spec {label!r}: only OpenAPI 3.x is supported, found {found}"
        )
    if not isinstance(doc.get("paths"), dict):
        raise OpenAPIError(f"OpenAPI spec {label!r} has no 'paths' mapping")
    if not isinstance(doc.get("info", {}), dict):
        raise OpenAPIError(f"OpenAPI spec {label!r}: 'info' must be a mapping")
    return doc, label


def _read(path: Path) -> tuple[Any, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OpenAPIError(f"cannot read OpenAPI spec {str(path)!r}: {e}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise OpenAPIError(
            f"OpenAPI spec {str(path)!r} is not UTF-8 text (byte {e.start}: "
            f"{data[e.start:e.start + 1]!r}); save it as UTF-8"
        ) from e
    try:
        doc = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError) as e:
        raise OpenAPIError(f"OpenAPI spec {str(path)!r} is not valid YAML/JSON: {e}") from e
    except RecursionError:
        raise OpenAPIError(
            f"OpenAPI spec {str(path)!r} nests too deeply to parse (thousands of levels); "
            "it is not an API description"
        ) from None
    return doc, path.name


# Keywords whose values are schemas. Every one is converted, so that every `$ref` in the result
# is one this module wrote: jsonschema fetches a remote `$ref` it meets over the network, with no
# egress check, on every validation; data keywords (`enum`, `const`, `default`, `examples`) are
# copied as they are, since a `$ref` key there is data
_ONE_SCHEMA = frozenset({
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
})
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "dependentSchemas", "dependencies"})
# keywords that would make the validator resolve references this module does not control
_REFUSED = frozenset({
    "$id", "$dynamicRef", "$recursiveRef", "$defs", "definitions",
})
_COMPONENTS = "#/components/schemas/"


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class Components:
    """Component schemas converted once per import and shared by every operation's converter.

    A large spec's operations reach the same few hundred components (GitHub's ~1,000 operations
    share ~900); converting them again for each operation was most of the conversion time, and
    sharing the converted objects lets `SchemaCheck` check each one once.
    """

    def __init__(self) -> None:
        #: component name -> its converted schema (``{}`` while it is being converted)
        self.schemas: dict[str, Any] = {}
        #: component name -> the components its schema refers to directly, in the order met
        self.refs: dict[str, list[str]] = {}


class _Converter:
    """Resolves ``$ref``s and turns OpenAPI schema objects into JSON Schema (2020-12)."""

    def __init__(
        self, doc: dict[str, Any], label: str, components: Components | None = None
    ) -> None:
        self.doc = doc
        self.label = label
        #: the component schemas this converter's schemas reach (directly or through others)
        self.defs: dict[str, Any] = {}
        self.components = components if components is not None else Components()
        # non-component $refs being inlined right now: meeting one again is a cycle
        self._inlining: list[str] = []
        # components being converted right now, innermost last
        self._converting: list[str] = []

    def resolve(self, obj: Any, seen: frozenset[str] = frozenset()) -> Any:
        """Follow a top-level ``$ref`` (parameters, request bodies, schemas)."""
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if ref in seen:
                raise OpenAPIError(f"{self.label}: circular $ref {ref!r}")
            seen = seen | {ref}
            obj = self._pointer(ref)
        return obj

    def _pointer(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise OpenAPIError(
                f"{self.label}: only local $refs ('#/...') are supported, found {ref!r}; "
                "external files and URLs are never fetched: inline the referenced schema or "
                "bundle the spec (e.g. `npx @redocly/cli bundle`)"
            )
        node: Any = self.doc
        for raw in ref[2:].split("/"):
            part = _unescape(raw)
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise OpenAPIError(f"{self.label}: $ref {ref!r} points to nothing")
        return node

    def lookup(self, schema: Any) -> Any:
        """The `$defs` entry a converted ``{"$ref": ...}`` stands for (itself otherwise)."""
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref: str = schema["$ref"]
            if ref.startswith("#/$defs/"):
                name = _unescape(ref[len("#/$defs/"):].replace("%25", "%"))
                return self.defs.get(name, schema)
        return schema

    def schema(self, s: Any) -> Any:
        """Convert one schema; component schemas become ``$defs`` (recursion stays finite)."""
        if isinstance(s, list):
            return [self.schema(x) for x in s]
        if not isinstance(s, dict):
            return s
        if "$ref" in s:
            return self._ref(s["$ref"])
        out: dict[str, Any] = {}
        for key, value in s.items():
            if key in _OPENAPI_ONLY_KEYS or key.startswith("x-"):
                continue
            if key in _REFUSED:
                raise OpenAPIError(
                    f"{self.label}: schema keyword {key!r} is not supported in OpenAPI specs "
                    "here (it would make the validator resolve references on its own); put "
                    "shared schemas in '#/components/schemas' and $ref them"
                )
            if key in _SCHEMA_MAP and isinstance(value, dict):
                out[key] = {k: self.schema(v) for k, v in value.items()}
            elif key in _ONE_SCHEMA or key in _SCHEMA_LIST:
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

    def _ref(self, ref: Any) -> Any:
        if isinstance(ref, str) and ref.startswith(_COMPONENTS):
            name = _unescape(ref[len(_COMPONENTS):])
            if self._converting:
                met = self.components.refs[self._converting[-1]]
                if name not in met:
                    met.append(name)
            if name not in self.components.schemas:
                self._convert_component(name, ref)
            if not self._converting:
                self._reach(name)
            # a JSON pointer in a URI fragment: `~` and `/` escaped, `%` percent-encoded
            escaped = name.replace("~", "~0").replace("/", "~1").replace("%", "%25")
            return {"$ref": f"#/$defs/{escaped}"}
        if ref in self._inlining:
            chain = " -> ".join([*self._inlining[self._inlining.index(ref):], ref])
            raise OpenAPIError(
                f"{self.label}: circular $ref {chain}; only schemas under "
                "'#/components/schemas/' may refer to themselves: move it there"
            )
        self._inlining.append(ref)
        try:
            return self.schema(self.resolve({"$ref": ref}))
        finally:
            self._inlining.pop()

    def _convert_component(self, name: str, ref: str) -> None:
        """Convert a component schema once for the import.

        Its conversion does not depend on the operation being converted: the non-component
        `$ref`s being inlined around it are set aside (a cycle through a component is finite,
        it goes through ``$defs``), so the result can be shared.
        """
        schemas, refs = self.components.schemas, self.components.refs
        schemas[name], refs[name] = {}, []  # placeholder breaks cycles
        inlining, self._inlining = self._inlining, []
        self._converting.append(name)
        try:
            schemas[name] = self.schema(self._pointer(ref))
        except BaseException:
            del schemas[name], refs[name]
            raise
        finally:
            self._converting.pop()
            self._inlining = inlining

    def _reach(self, name: str) -> None:
        """Add a component and those it reaches to `defs`, in the order converting them here
        would have met them (depth first), so each operation's ``$defs`` is as before."""
        stack = [name]
        while stack:
            current = stack.pop()
            if current in self.defs:
                continue
            self.defs[current] = self.components.schemas[current]
            stack.extend(reversed(self.components.refs[current]))
