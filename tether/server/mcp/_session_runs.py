"""The runs each client connection created: all that `tasks/list` and `resources/list` show it.

Tether's MCP server has no authorization context to bind a task to (MCP 2025-11-25: a
receiver that cannot identify its requestors should not let them enumerate each other's
tasks). The connection is the one requestor identity it has, so the listings are scoped to
it: a client sees the tasks and runs it made, never those of another client of the same
server. A task id stays a capability: whoever holds it (the client that created it, after a
reconnect or a server restart) reads, awaits and cancels that task by `tasks/get`,
`tasks/result` and `tasks/cancel`, as the 2026-07-28 tasks extension has it, which dropped
`tasks/list` for the same reason.
"""

from __future__ import annotations

import weakref
from typing import Any

#: the ids kept per connection, newest last (a long-lived connection's oldest fall out)
KEPT = 1000


def connection_of(session: Any) -> Any:
    """The connection a request came on. The SDK makes a `ServerSession` per request and keeps
    the connection private to it (as `check_handshake` reads it); should that change, each
    request is its own requestor and the listings show nothing, never another client's."""
    return getattr(session, "_connection", session)


class SessionRuns:
    """Run ids by the SDK's connection (`connection_of` a request's session); forgotten with
    the connection."""

    def __init__(self) -> None:
        self._runs: weakref.WeakKeyDictionary[Any, dict[str, None]] = \
            weakref.WeakKeyDictionary()

    def add(self, session: Any, run_id: str) -> None:
        runs = self._runs.setdefault(connection_of(session), {})
        runs[run_id] = None
        if len(runs) > KEPT:
            del runs[next(iter(runs))]

    def of(self, session: Any) -> list[str]:
        """The session's run ids, newest first."""
        return list(reversed(self._runs.get(connection_of(session), {})))
