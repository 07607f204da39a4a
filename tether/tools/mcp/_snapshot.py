"""The tools MCP servers list right now, for `tether tools lock|check|list` (synchronous code).

Each server is connected, listed and closed again: the tools returned carry their schemas for
the lock and the drift check, and a call to one of them fails clearly (its connection is closed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from pathlib import Path

from tether.tools.mcp._config import MCPServerConfig, read_mcp_config
from tether.tools.mcp._tool import MCPTool
from tether.tools.mcp._toolbox import MCPTools


def mcp_tools_now(configs: Sequence[Path | MCPServerConfig]) -> list[MCPTool]:
    """Every tool of the servers in ``configs`` (YAML files or server configs), as listed now.

    Raises `MCPConfigError` naming a server that cannot be reached or a bad config file.
    """
    servers: list[MCPServerConfig] = []
    for c in configs:
        servers.extend([c] if isinstance(c, MCPServerConfig) else read_mcp_config(c))

    files = [str(c) for c in configs if not isinstance(c, MCPServerConfig)]

    async def listing() -> list[MCPTool]:
        box = MCPTools(servers)
        if files:  # every server is required here: going on without one means removing it
            box.go_on_without = f"remove it from {' or '.join(files)} to go on without it"
        async with box:
            return list(box.tools)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(listing())
    # called from async code: a loop of its own in a thread (this one's loop must not block)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, listing()).result()
