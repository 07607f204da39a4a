"""Meta-schema validation of OpenAPI tools' argument schemas, each distinct piece once.

Every tool's argument schema is checked against JSON Schema 2020-12's meta-schema before the tool
exists, so a bad schema in a spec is an import error, not a validator crash on a model's call.
Done per tool on the whole schema, that check dominated importing a large spec (98% of the time
for 5,000 operations): an operation's ``$defs`` carry every component schema it reaches, so
GitHub-shaped specs re-check the same few hundred components thousands of times, and
jsonschema's ``$dynamicRef`` handling makes each check slow.

The meta-schema checks the schema under ``$defs`` and each one under ``properties`` on its own
(``additionalProperties: {"$dynamicRef": "#meta"}``), so checking those pieces separately finds
exactly the errors the whole check finds. `SchemaCheck` does that and remembers what passed:
component schemas by identity (the converter shares one converted object per component across an
import), argument schemas and the object around them by canonical JSON. The error raised is
jsonschema's own, with its path prefixed as if the whole schema had been checked, so the builder
can say where.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
from jsonschema.validators import validator_for


def _canonical(piece: Any) -> bytes | None:
    """Canonical JSON of a schema piece; None when it is not plain JSON (checked, not cached:
    a date and the string it prints as are different values to the meta-schema)."""
    try:
        return orjson.dumps(
            piece, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
            default=_refuse,
        )
    except TypeError:
        return None


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


class SchemaCheck:
    """Checks argument schemas (``{"type": "object", "properties": ..., "$defs": ...}``) against
    the 2020-12 meta-schema; one per import, so what passed is not checked again."""

    def __init__(self) -> None:
        cls = jsonschema.Draft202012Validator
        meta = validator_for(cls.META_SCHEMA, default=cls)
        # what `check_schema` builds on every call, built once
        self._validator = meta(cls.META_SCHEMA, format_checker=meta.FORMAT_CHECKER)
        # id -> the object itself, so an id is not reused by another object while cached
        self._by_id: dict[int, Any] = {}
        self._by_json: set[bytes] = set()

    def parameters(self, parameters: dict[str, Any]) -> None:
        """Raise `jsonschema.SchemaError` (path from the top of `parameters`) unless valid."""
        defs = parameters.get("$defs")
        props = parameters.get("properties")
        shell = {k: v for k, v in parameters.items() if k != "$defs"}
        if isinstance(props, dict):
            shell["properties"] = {}
        if isinstance(defs, dict):
            shell["$defs"] = {}
        self._piece(shell, ())
        if isinstance(props, dict):
            for name, schema in props.items():
                self._piece(schema, ("properties", name))
        if isinstance(defs, dict):
            for name, schema in defs.items():
                if id(schema) in self._by_id:
                    continue
                self._check(schema, ("$defs", name))
                self._by_id[id(schema)] = schema

    def _piece(self, schema: Any, prefix: tuple[str, ...]) -> None:
        key = _canonical(schema)
        if key is not None and key in self._by_json:
            return
        self._check(schema, prefix)
        if key is not None:
            self._by_json.add(key)

    def _check(self, schema: Any, prefix: tuple[str, ...]) -> None:
        for error in self._validator.iter_errors(schema):
            raised = jsonschema.SchemaError.create_from(error)
            raised.path.extendleft(reversed(prefix))
            raise raised


def where_in_schema(path: Any) -> str:
    """Where a meta-schema error is, in the spec's terms (a component, an argument)."""
    parts = [str(p) for p in path]
    if len(parts) >= 2 and parts[0] == "$defs":
        return "#/components/schemas/" + "/".join(parts[1:])
    if len(parts) >= 2 and parts[0] == "properties":
        rest = "/".join(parts[2:])
        return f"argument {parts[1]!r}" + (f", at {rest}" if rest else "")
    return "/".join(parts) or "the argument object"

