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
