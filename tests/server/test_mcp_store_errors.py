"""A call whose run cannot be written tells the client why.

Why: the server's database locked by another program past the busy timeout made a plain tool
call's run fail before it was ever written, and the client got only "run ... does not exist: it
was never written (see the server's log for why)"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.server.mcp_agents import POLICY, TOOLS
from tether.guards import GuardConfig, Guards, loads_policy
from tether.server.mcp import TetherMCPServer
from tether.store import SQLiteStore


async def test_a_call_whose_run_cannot_be_written_says_why(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    guards = Guards(GuardConfig(policy=loads_policy(POLICY)), tools=TOOLS)
    srv = TetherMCPServer(TOOLS, db=SQLiteStore(path, busy_timeout=0.2), guards=guards)
    async with srv.running(), Client(srv.sdk, mode="legacy") as client:
        lock = sqlite3.connect(path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # another program holds the write lock
            with pytest.raises(MCPError) as refused:
                await client.call_tool("add", {"a": 1, "b": 2})
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        message = str(refused.value)
        assert "was never written (its execution failed before it could be written: " \
               "database" in message and "stayed locked by another process for 0.2s" in message
        added = await client.call_tool("add", {"a": 1, "b": 2})  # the lock gone, all is well
        assert isinstance(added.content[0], types.TextContent) and added.content[0].text == "3"
    srv.close()
