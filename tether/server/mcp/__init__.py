"""Tether's tools and agents over the Model Context Protocol (`tether mcp serve`).

`TetherMCPServer` serves a `ToolRegistry` under Tether's guards — every call a journaled run in
`TETHER_DB` — and agents as durable MCP tasks, on the official SDK's `MCPServer`. See
docs/mcp.md ("Server").
"""

from tether.server.mcp._elicit import ElicitationApprover
from tether.server.mcp._server import DEFAULT_AGENT_SCHEMA, AgentTool, TetherMCPServer

__all__ = ["DEFAULT_AGENT_SCHEMA", "AgentTool", "ElicitationApprover", "TetherMCPServer"]
