"""Typed Python signatures → pydantic argument models → JSON Schema, plus schema hashing.

The argument model is the single source of truth: the JSON Schema shown to the model and the
validation of what the model proposes both come from it, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from tether.tools._errors import FieldError, ToolDefinitionError

#: a parameter with this name is not part of the schema: the runtime injects ``run_id:seq``
IDEMPOTENCY_PARAM = "idempotency_key"

_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?)\s*:?\s*$",
    re.IGNORECASE,
)
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description}).

    Only the ``Args:`` section is interpreted; other sections (Returns, Raises, ...) are dropped
    from the tool description because the model cannot use them.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        m = _SECTION.match(line)
        if m and not line.startswith((" ", "\t")):
            section = m.group(1).lower()
            current = None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters", "params"):
            am = _ARG_LINE.match(line)
            indent = len(line) - len(line.lstrip())
            if am and (current is None or indent <= _indent_of(lines, current)):
                current = am.group(1)
                params[current] = am.group(2).strip()
            elif current is not None and line.strip():
                params[current] = (params[current] + " " + line.strip()).strip()
    return "\n".join(description).strip(), params


def _indent_of(lines: list[str], name: str) -> int:
    for line in lines:
        m = _ARG_LINE.match(line)
        if m and m.group(1) == name:
            return len(line) - len(line.lstrip())
    return 0


def _caller_locals(max_depth: int = 8) -> dict[str, Any]:
    """Local names of the frames that led here, nearest first (like pydantic's parent namespace)."""
    names: dict[str, Any] = {}
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None
        for _ in range(max_depth):
            if f is None:
                break
            for key, value in f.f_locals.items():
                names.setdefault(key, value)
            f = f.f_back
    finally:
        del frame
    return names


def build_args_model(
    fn: Callable[..., Any], tool_name: str, param_docs: dict[str, str]
) -> tuple[type[BaseModel], bool]:
    """Build the pydantic model of ``fn``'s arguments.

    Returns ``(model, accepts_idempotency_key)``. Unknown extra arguments are forbidden so a
    hallucinated field is reported to the model instead of silently ignored.
    """
    try:
        sig = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except NameError:
            # a type defined in the enclosing function (string annotations): look in callers
            hints = typing.get_type_hints(fn, localns=_caller_locals(), include_extras=True)
    except (NameError, TypeError) as e:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve type hints: {e}") from e
    fields: dict[str, Any] = {}
    accepts_key = False
    for pname, param in sig.parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {tool_name!r}: *args/**kwargs parameter {pname!r} is not supported; "
                "tools need named, typed parameters"
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: positional-only parameter {pname!r} is not supported"
            )
        if pname == IDEMPOTENCY_PARAM:
            accepts_key = True
            continue
        if pname not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {pname!r} has no type annotation; "
                "every tool parameter must be typed so a schema can be generated"
            )
        annotation = hints[pname]
        default = param.default
        doc = param_docs.get(pname)
        if isinstance(default, FieldInfo):
            info = default
            if info.description is None and doc:
                info = FieldInfo.merge_field_infos(info, description=doc)
        else:
            value = ... if default is inspect.Parameter.empty else default
            info = Field(default=value, description=doc) if doc else Field(default=value)
        fields[pname] = (annotation, info)
    model_name = "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]+", tool_name))
    try:
        model = create_model(
            f"{model_name or 'Tool'}Args",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        model.model_json_schema()
    except Exception as e:  # pydantic raises several error types for unsupported annotations
        raise ToolDefinitionError(
            f"tool {tool_name!r}: cannot generate a JSON Schema from its signature: {e}"
        ) from e
    return model, accepts_key


_SCHEMA_MAP_KEYS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "contains")


def clean_schema(schema: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keys (noise for a model, tokens for nothing).

    Only keys of schema objects are touched: a *property* named ``title`` is kept.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: clean_schema(v) for k, v in value.items()}
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [clean_schema(v) for v in value]
        elif key in _SCHEMA_KEYS:
            out[key] = clean_schema(value)
        else:
            out[key] = value
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = clean_schema(model.model_json_schema())
    schema.setdefault("properties", {})
    return dict(schema)


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def schema_hash(contract: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(contract)).hexdigest()


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def field_errors(err: ValidationError) -> list[FieldError]:
    """Turn a pydantic error into model-readable field errors."""
    out: list[FieldError] = []
    for e in err.errors(include_url=False):
        loc = tuple(e.get("loc", ()))
        kind = e.get("type", "")
        value = None if kind == "missing" else e.get("input")
        if kind == "extra_forbidden":
            message = "unexpected field; it is not a parameter of this tool"
        else:
            message = e.get("msg", "invalid value")
        out.append(FieldError(_loc(loc), message, value))
    return out


_SCALARS: tuple[type, ...] = (str, int, float, bool, type(None))


def _plain_metadata(metadata: Any) -> bool:
    """Constraints that only check (``Field(ge=0)``, ``pattern``, ``max_length``, ``strict``), or
    ``StringConstraints`` (whose strip/case changes give the same value a second time); not
    validator functions, which may change a value again each time they run."""
    import annotated_types
    from pydantic import StringConstraints

    return all(isinstance(m, annotated_types.BaseMetadata | StringConstraints) for m in metadata)


def _json_kind(annotation: Any) -> str | None:
    """``"scalar"`` when a value of this type is an immutable JSON value that validating its JSON
    form again gives back unchanged, ``"container"`` when it is a JSON list/object of such
    values (the function could change it, so it gets a copy), else None (needs the model)."""
    if annotation in _SCALARS:
        return "scalar"
    if annotation is Any or annotation in (list, dict):
        return "container"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _json_kind(args[0]) if _plain_metadata(args[1:]) else None
    if origin is typing.Literal:
        return "scalar" if all(type(a) in _SCALARS for a in args) else None
    if origin is typing.Union or origin is types.UnionType:
        kinds = [_json_kind(a) for a in args]
        if None in kinds:
            return None
        return "container" if "container" in kinds else "scalar"
    if origin is list and len(args) == 1:
        return "container" if _json_kind(args[0]) is not None else None
    if origin is dict and len(args) == 2 and args[0] is str:
        return "container" if _json_kind(args[1]) is not None else None
    return None


def direct_call_fields(model: type[BaseModel]) -> frozenset[str] | None:
    """When every argument of `model` is plain JSON (see `_json_kind`), the names of those to
    copy before a call; the function can then take its validated, normalised arguments as they
    are, without the model parsing them a second time. None: some argument needs the model
    (a nested model, a date, an enum, a validator function...)."""
    copies: set[str] = set()
    for name, field in model.model_fields.items():
        kind = _json_kind(field.annotation)
        aliased = field.alias or field.validation_alias or field.serialization_alias
        if kind is None or aliased or not _plain_metadata(field.metadata):
            return None
        if kind == "container":
            copies.add(name)
    return frozenset(copies)


def copy_json(value: Any) -> Any:
    """A copy of a JSON value's lists and objects (its scalars are immutable)."""
    if type(value) is list:
        return [copy_json(v) for v in value]
    if type(value) is dict:
        return {k: copy_json(v) for k, v in value.items()}
    return value
