"""Errors raised by the tool layer.

Every error that can reach a model (bad arguments, unknown tool, a failing or slow tool) carries a
message written for the model to read and act on: which tool, which field, what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ToolError(Exception):
    """Base class of every tool-layer error."""

    #: short machine-readable kind, used in :class:`tether.tools.ToolResult` failures
    kind: str = "tool_error"


class ToolDefinitionError(ToolError, TypeError):
    """A function or spec cannot be turned into a tool (missing annotation, ``*args``, ...)."""

    kind = "definition_error"


class ToolConflictError(ToolError):
    """A tool with the same name and version is already registered."""

    kind = "conflict"


class ToolNotFoundError(ToolError, LookupError):
    """No tool of that name (or version) is registered."""

    kind = "unknown_tool"

    def __init__(self, name: str, available: list[str], version: str | None = None) -> None:
        self.name = name
        self.version = version
        self.available = available
        what = f"{name!r} version {version!r}" if version else repr(name)
        listing = ", ".join(available) if available else "none"
        super().__init__(f"unknown tool {what}; available tools: {listing}")


@dataclass(frozen=True)
class FieldError:
    """One problem with one argument field."""

    #: dotted path to the field, e.g. ``address.zip`` or ``items.2.qty``; ``""`` = the whole object
    field: str
    message: str
    #: the offending value when there was one (``None`` for missing fields)
    value: Any = None

    def __str__(self) -> str:
        where = self.field or "(arguments)"
        if self.value is None:
            return f"{where}: {self.message}"
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{where}: {self.message} (got {shown})"


class ToolArgumentError(ToolError, ValueError):
    """The arguments proposed for a tool do not match its schema.

    ``str(err)`` is meant to be shown to the model verbatim so it can correct its call.
    """

    kind = "invalid_arguments"

    def __init__(self, tool: str, errors: list[FieldError]) -> None:
        self.tool = tool
        self.errors = errors
        lines = "\n".join(f"- {e}" for e in errors)
        super().__init__(
            f"invalid arguments for tool {tool!r}:\n{lines}\n"
            "Fix these fields and call the tool again."
        )


class ToolTimeoutError(ToolError, TimeoutError):
    """The tool did not finish within its timeout."""

    kind = "timeout"

    def __init__(self, tool: str, timeout: float) -> None:
        self.tool = tool
        self.timeout = timeout
        # a call cannot be taken back once made (a sync tool's thread cannot even be stopped):
        # the caller, the journal and the model are told its effect is unknown, not absent
        super().__init__(f"tool {tool!r} timed out after {timeout:g}s; whether it took effect "
                         "(or still will) is unknown")


class ToolExecutionError(ToolError):
    """The tool ran and failed (raised, or an HTTP tool got an error status)."""

    kind = "execution_error"

    def __init__(self, tool: str, message: str, *, status: int | None = None) -> None:
        self.tool = tool
        self.status = status
        super().__init__(message)


class OpenAPIError(ToolDefinitionError):
    """An OpenAPI document cannot be turned into tools."""

    kind = "openapi_error"


class LockError(ToolError):
    """A lock file is missing, unreadable or of an unknown format."""

    kind = "lock_error"
