"""`MCPTool`: one tool of an MCP server as a Tether `Tool`.

It is a tool like any other, so `ctx.tool` journals each call as one `tool:` step (replay hands
the recorded result back and never calls the server again), and the guards judge it on its
name, arguments and side-effect class. The class comes from the server's annotations, which the
spec calls hints: `readOnlyHint` means `read`; `destructiveHint: false` means `write`; anything
else, no annotations at all included, is `destructive` (the spec's own default), so a server
that says nothing gets the most cautious treatment. The operator's `side_effects` override wins.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jsonschema
import orjson
import referencing
import referencing.exceptions

from tether.tools._base import Tool, coerce_arguments
from tether.tools._errors import (
    FieldError,
    ToolArgumentError,
    ToolDefinitionError,
    ToolExecutionError,
)
from tether.tools._validated import validated_by
from tether.tools.mcp._config import MCPServerConfig

if TYPE_CHECKING:
    import mcp_types

    from tether.tools.mcp._connection import MCPConnection

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
#: the longest definition (description and input schema, as JSON) a server's tool may have: it
#: is sent to the model with every model call, so a server must not spend the run's tokens
MAX_DEFINITION_CHARS = 100_000


def classify(annotations: mcp_types.ToolAnnotations | None, *, trusted: bool = True
             ) -> tuple[str, bool]:
    """(side effect, idempotent) from a tool's annotations (see the module docstring)."""
    if annotations is None or not trusted:
        return "destructive", False
    if annotations.read_only_hint is True:
        return "read", True
    idempotent = annotations.idempotent_hint is True
    if annotations.destructive_hint is False:
        return "write", idempotent
    return "destructive", idempotent


def local_name(config: MCPServerConfig, remote: str) -> str:
    """The registry name of a server's tool: its prefix plus the name, made provider-safe."""
    name = config.prefix + _BAD_NAME_CHARS.sub("_", remote)
    return name[:64]


class MCPTool(Tool):
    """A tool called with ``tools/call`` on a live MCP server connection."""

    def __init__(self, connection: MCPConnection, remote: mcp_types.Tool, *,
                 server_version: str | None = None) -> None:
        config = connection.config
        side_effect, idempotent = classify(remote.annotations, trusted=config.trust_annotations)
        if remote.name in config.side_effects:
            side_effect = config.side_effects[remote.name]
            idempotent = idempotent and side_effect != "destructive"
        schema = dict(remote.input_schema) if isinstance(remote.input_schema, dict) else (
            remote.input_schema.model_dump(mode="json", by_alias=True, exclude_none=True))
        schema.setdefault("type", "object")
        size = len(orjson.dumps([remote.description or remote.title or "", schema]))
        if size > MAX_DEFINITION_CHARS:
            raise ToolDefinitionError(
                f"{config.label}: tool {remote.name!r} has a definition of {size:,} characters "
                f"(description and input schema); Tether takes at most {MAX_DEFINITION_CHARS:,}, "
                "since every model call carries it")
        cycle = _ref_cycle(schema)
        if cycle:
            raise ToolDefinitionError(
                f"{config.label}: tool {remote.name!r} has an invalid input schema: $ref "
                f"{' -> '.join(cycle)} refers to itself without describing a value")
        try:
            validator_cls = jsonschema.validators.validator_for(
                schema, default=jsonschema.Draft202012Validator)
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise ToolDefinitionError(
                f"{config.label}: tool {remote.name!r} has an invalid input schema: {e.message}"
            ) from None
        super().__init__(
            name=local_name(config, remote.name),
            version=server_version or "0",
            description=remote.description or remote.title or "",
            side_effect=side_effect,
            idempotent=idempotent,
            timeout=config.timeout + 5.0,  # the session's own bound answers first, clearer
            retries=0,  # a lost call may have run: never silently twice
            parameters=schema,
            accepts_idempotency_key=False,
            source=f"mcp:{config.name}#{remote.name}",
        )
        self.kind = "mcp"
        self.connection = connection
        self.server = config.name
        self.remote_name = remote.name
        hints = remote.annotations
        # the open world is the spec's default; only a trusted `openWorldHint: false` closes it,
        # and an open-world tool's URL arguments go through the egress policy
        self.network = not (config.trust_annotations and hints is not None
                            and hints.open_world_hint is False)
        self.tags = frozenset({config.name, side_effect, *config.tags,
                               *config.tool_tags.get(remote.name, ()),
                               *(["idempotent"] if idempotent else [])})
        # a `$ref` to a network URI is never fetched (SEP-2106): a server must not make its
        # client send requests, and a schema must not change behind the lock's back
        refs = referencing.Registry(retrieve=_no_fetch)  # type: ignore[call-arg]
        self._validator = validator_cls(schema, registry=refs)

    def validate(self, arguments: Any) -> dict[str, Any]:
        if validated_by(arguments, self):  # this tool's own validated arguments: a plain copy
            return dict(arguments)
        data = coerce_arguments(self.name, arguments)
        errors: list[FieldError] = []
        try:
            found = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        except referencing.exceptions.Unresolvable as e:
            raise ToolArgumentError(self.name, [FieldError(
                "", f"the tool's schema refers to {e.ref!r}, which Tether does not fetch; "
                "leave out the argument that uses it")]) from None
        except RecursionError:  # a schema (or arguments) nested past what validation can walk
            raise ToolArgumentError(self.name, [FieldError(
                "", f"the arguments cannot be checked against the schema of tool "
                f"{self.remote_name!r} of {self.connection.config.label}: it nests too deeply; "
                "send flatter arguments or do without this tool")]) from None
        for err in found:
            path = ".".join(str(p) for p in err.absolute_path)
            if err.validator == "required" and isinstance(err.instance, dict):
                errors.extend(FieldError(".".join(filter(None, [path, f])), "Field required")
                              for f in err.validator_value if f not in err.instance)
            else:
                errors.append(FieldError(path, err.message, err.instance))
        if errors:
            raise ToolArgumentError(self.name, errors)
        return data

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        result = await self.connection.call(self.remote_name, arguments)
        if result.is_error:  # the server's message, cut like a result: it reaches the journal
            message = self.connection.clip(_text(result.content)) or "(no message)"
            raise ToolExecutionError(
                self.name, f"tool {self.remote_name!r} of {self.connection.config.label} "
                f"reported an error: {message}")
        value = (result.structured_content if result.structured_content is not None
                 else _content(result.content))
        return _bounded(value, self.connection.config.max_output_chars)


def _ref_cycle(schema: dict[str, Any]) -> list[str]:
    """A chain of same-document ``$ref``s that comes back to where it started without any
    keyword in between (``a -> b -> a``): validating against it recurses until Python's stack
    ends. Empty when there is none; a recursive schema that describes values is fine."""

    def target(ref: str) -> Any:
        node: Any = schema
        for part in ref[2:].split("/") if ref.startswith("#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node if ref.startswith("#/") or ref == "#" else None

    def refs(node: Any) -> list[str]:
        found: list[str] = []
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    found.append(value)
                elif key not in ("const", "enum", "default", "examples"):
                    found.extend(refs(value))
        elif isinstance(node, list):
            for value in node:
                found.extend(refs(value))
        return found

    for start in dict.fromkeys(refs(schema)):
        chain, ref = [start], start
        while True:
            node = target(ref)
            # only a bare reference (nothing else to check there) passes straight through
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)
                    and set(node) <= {"$ref", "$comment", "description", "title"}):
                break
            ref = node["$ref"]
            if ref in chain:
                return [*chain, ref]
            chain.append(ref)
    return []


def _no_fetch(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _bounded(value: Any, limit: int) -> Any:
    """The value, or its JSON text cut at ``limit`` characters with a note saying so."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) <= limit:
        return value
    return (text[:limit] + f"\n[... cut: the result had {len(text)} characters; Tether keeps "
            f"{limit} (max_output_chars)]")


def _content(blocks: list[Any]) -> Any:
    """A result's content blocks as JSON: one text is a string, binary data is described."""
    out: list[Any] = []
    for b in blocks:
        kind = getattr(b, "type", None)
        if kind == "text":
            out.append(b.text)
        elif kind in ("image", "audio"):
            out.append({"type": kind, "mimeType": b.mime_type,
                        "note": f"{len(b.data) * 3 // 4} bytes of {kind} data not shown"})
        elif kind == "resource" and hasattr(b.resource, "text"):
            out.append({"type": "resource", "uri": str(b.resource.uri), "text": b.resource.text})
        else:
            out.append(b.model_dump(mode="json", by_alias=True, exclude_none=True))
    if len(out) == 1:
        return out[0]
    return out


def _text(blocks: list[Any]) -> str:
    return "\n".join(b.text for b in blocks if getattr(b, "type", None) == "text").strip()
