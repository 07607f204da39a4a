"""Tools from MCP servers (stdio and streamable HTTP), on the official `mcp` SDK.

Their tools join a `ToolRegistry` and go through the same policy, approvals, budgets and journal
as any tool. Importing this package loads the SDK only when a connection is made.
"""

from tether.tools.mcp._config import (
    DEFAULT_MCP_CONFIG,
    MCPConfigError,
    MCPServerConfig,
    add_mcp_server,
    read_mcp_config,
)
from tether.tools.mcp._connection import MCPConnection, MCPUnavailableError
from tether.tools.mcp._tool import MCPTool, classify
from tether.tools.mcp._toolbox import MCPTools

__all__ = [
    "DEFAULT_MCP_CONFIG",
    "MCPConfigError",
    "MCPConnection",
    "MCPServerConfig",
    "MCPTool",
    "MCPTools",
    "MCPUnavailableError",
    "add_mcp_server",
    "classify",
    "read_mcp_config",
]
