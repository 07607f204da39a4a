"""The one seam through which cross-cutting concerns (guards, tracing, metrics) see effects.

An interceptor is told about every effect before it runs live (`before`, which may raise
`RunHalted` or another error to stop it) and after it completes, live or replayed (`after`, with
`replay=True` when the outcome came from the journal, so accumulators such as budgets rebuild the
same totals on every replay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .context import Context


@dataclass(slots=True)
class Effect:
    kind: str  # "step" | "spawn"
    name: str
    key: str
    args: tuple[Any, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Interceptor(Protocol):
    async def before(self, ctx: Context, effect: Effect) -> None: ...

    async def after(
        self, ctx: Context, effect: Effect, result: Any, error: BaseException | None, replay: bool
    ) -> None: ...


class BaseInterceptor:
    """Convenience base: override only what you need."""

    async def before(self, ctx: Context, effect: Effect) -> None:
        return None

    async def after(
        self, ctx: Context, effect: Effect, result: Any, error: BaseException | None, replay: bool
    ) -> None:
        return None
