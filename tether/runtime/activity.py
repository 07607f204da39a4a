"""`@activity`: declare how a function behaves as a journaled step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


@overload
def activity(fn: F) -> F: ...
@overload
def activity(*, idempotent: bool = False) -> Callable[[F], F]: ...


def activity(fn: Any = None, *, idempotent: bool = False) -> Any:
    """Mark a function used with `ctx.step`. `idempotent=True` tells the runtime it may run the
    function again when a crash left its outcome unknown (it must tolerate a repeat, e.g. by
    using the `idempotency_key` parameter it receives)."""

    def mark(f: F) -> F:
        f.__tether_idempotent__ = idempotent  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark
