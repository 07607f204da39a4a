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
from collections.abc import Callable
from typing import Any

from mcp.shared.exceptions import MCPError

from tether.server.mcp._stdio import TOO_MANY_REQUESTS

#: the ids kept per connection, newest last (a long-lived connection's oldest fall out)
KEPT = 1000
#: the unfinished tasks one connection may have: a task answers at once, so without a bound a
#: client could queue runs (agent code, on this server's worker) as fast as it can send
MAX_OPEN_TASKS = 100


def connection_of(session: Any) -> Any:
    """The connection a request came on. The SDK makes a `ServerSession` per request and keeps
    the connection private to it (as `check_handshake` reads it); should that change, each
    request is its own requestor and the listings show nothing, never another client's."""
    return getattr(session, "_connection", session)


class SessionRuns:
    """Run ids by the SDK's connection (`connection_of` a request's session); forgotten with
    the connection."""

    def __init__(self, max_open_tasks: int = MAX_OPEN_TASKS) -> None:
        if max_open_tasks < 1:
            raise ValueError(f"max_open_tasks must be at least 1, not {max_open_tasks}")
        self.max_open_tasks = max_open_tasks
        self._runs: weakref.WeakKeyDictionary[Any, dict[str, None]] = \
            weakref.WeakKeyDictionary()
        #: the tasks of each connection not seen finished yet
        self._open: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def admit_task(self, session: Any, unfinished: Callable[[str], bool]) -> None:
        """Refuse (`TOO_MANY_REQUESTS`) one more task on a connection that has
        `max_open_tasks` unfinished; `unfinished(run_id)` reads a task's run (only at the bound,
        once per task held)."""
        held = self._open.setdefault(connection_of(session), set())
        if len(held) < self.max_open_tasks:
            return
        held.difference_update([run_id for run_id in held if not unfinished(run_id)])
        if len(held) >= self.max_open_tasks:
            raise MCPError(TOO_MANY_REQUESTS, (
                f"this connection has {len(held)} unfinished tasks, the most one connection may "
                "have: wait for some to end (tasks/result) or cancel them (tasks/cancel) "
                "before creating another"))

    def add_task(self, session: Any, run_id: str) -> None:
        """`run_id` is an unfinished task of the connection (admitted by `admit_task`)."""
        self._open.setdefault(connection_of(session), set()).add(run_id)

    def add(self, session: Any, run_id: str) -> None:
        runs = self._runs.setdefault(connection_of(session), {})
        runs[run_id] = None
        if len(runs) > KEPT:
            del runs[next(iter(runs))]

    def of(self, session: Any) -> list[str]:
        """The session's run ids, newest first."""
        return list(reversed(self._runs.get(connection_of(session), {})))
