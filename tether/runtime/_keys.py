"""Key scopes: what makes an operation's journal key its position in the program.

Each task running agent code carries a `_Scope` in a context variable: a prefix and a counter.
`Context._next_key` bumps the counter of the current scope; the worker starts every execution in a
fresh top-level scope (`""`), and each `gather` branch gets its own (`"7:1."`), so keys do not
depend on which branch ran first. Its own module because the run context, `gather` and the worker
all use it.
"""

from __future__ import annotations

import contextvars


class _Scope:
    __slots__ = ("counter", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.counter = 0


_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar("tether_scope")
