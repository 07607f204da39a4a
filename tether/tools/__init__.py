"""Tether's typed tool layer ("the body").

A tool is a typed function (``@tool``), an OpenAPI operation or an MCP server's tool
(``tether.tools.mcp``), with the metadata the runtime needs: version, side-effect class,
idempotency, timeout and retries. Arguments proposed by a model
are validated against the tool's schema; failures are messages the model can act on.
"""

from tether.tools._base import SIDE_EFFECTS, SideEffect, Tool, ToolFailure, ToolResult
from tether.tools._decorator import FunctionTool, tool
from tether.tools._drift import Drift, diff_lock, read_lock
from tether.tools._errors import (
    FieldError,
    LockError,
    OpenAPIError,
    ToolArgumentError,
    ToolConflictError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolNotFoundError,
    ToolTimeoutError,
)
from tether.tools._lock import (
    DEFAULT_LOCK,
    OpenAPISource,
    ToolSources,
    check_lock,
    load_sources,
    lock_entries,
    tools_from_module,
    write_lock,
)
from tether.tools._openapi import OpenAPITool, openapi_tools
from tether.tools._registry import ToolRegistry
from tether.tools._validated import ValidatedArguments
from tether.tools.mcp import MCPServerConfig, MCPTool, MCPTools, MCPUnavailableError
from tether.tools.sql import sqlite_query_tool

__all__ = [
    "DEFAULT_LOCK",
    "SIDE_EFFECTS",
    "Drift",
    "FieldError",
    "FunctionTool",
    "LockError",
    "MCPServerConfig",
    "MCPTool",
    "MCPTools",
    "MCPUnavailableError",
    "OpenAPIError",
    "OpenAPISource",
    "OpenAPITool",
    "SideEffect",
    "Tool",
    "ToolArgumentError",
    "ToolConflictError",
    "ToolDefinitionError",
    "ToolError",
    "ToolExecutionError",
    "ToolFailure",
    "ToolNotFoundError",
    "ToolRegistry",
    "ToolResult",
    "ToolSources",
    "ToolTimeoutError",
    "ValidatedArguments",
    "check_lock",
    "diff_lock",
    "load_sources",
    "lock_entries",
    "openapi_tools",
    "read_lock",
    "sqlite_query_tool",
    "tool",
    "tools_from_module",
    "write_lock",
]
