"""Requests on a connection that has not completed the `initialize` handshake are refused.

The SDK refuses them (all but `ping`) in its handler chain, after the middleware. Tether's
middleware answers `tools/call`, the task methods and its resources itself, without reaching
that gate: a client whose `initialize` failed (or that never sent one) on a 2025-11-25
connection had its tool calls executed — governed and journaled, but served on a connection the
SDK refused `tools/list` on. The same gate is applied before those routes.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

#: methods a client may send before the handshake completes (the SDK's own exemptions)
EXEMPT = frozenset({"initialize", "ping", "server/discover"})


def check_handshake(ctx: ServerRequestContext[Any, Any]) -> None:
    """Refuse `ctx` if its connection has not accepted an `initialize` yet. A 2026-07-28
    request carries its own envelope and is born initialized. The SDK keeps the connection
    private to its session: if that changes, the check gives way to the SDK's own gate."""
    if ctx.method in EXEMPT:
        return
    connection = getattr(ctx.session, "_connection", None)
    if getattr(connection, "initialize_accepted", True):
        return
    # the SDK's gate answers INVALID_PARAMS too (its pinned compatibility): one code for both
    raise MCPError(INVALID_PARAMS, (
        f"{ctx.method}: this connection has not completed the initialize handshake (a failed "
        "or missing initialize); send initialize, then notifications/initialized, first"))
