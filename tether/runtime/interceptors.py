"""The one seam through which cross-cutting concerns (guards, tracing, metrics) see effects.

An interceptor is told about every effect before it runs live (`before`, which may raise
`RunHalted` or another error to stop it) and after it completes, live or replayed (`after`, with
`replay=True` when the outcome came from the journal, so accumulators such as budgets rebuild the
same totals on every replay).

The `ctx` an interceptor receives is the run's `Context`. `Context` is built on this module, so
the seam does not name it: `Interceptor` and `BaseInterceptor` take the context's type as a
parameter (`BaseInterceptor[Context]`; left out, it is `Any`), and an implementation annotates
`ctx: Context` as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

CtxT = TypeVar("CtxT", contravariant=True)


@dataclass(slots=True)
class Effect:
    kind: str  # "step" | "spawn"
    name: str
    key: str
    args: tuple[Any, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Interceptor(Protocol[CtxT]):
    async def before(self, ctx: CtxT, effect: Effect) -> None: ...

    async def after(
        self, ctx: CtxT, effect: Effect, result: Any, error: BaseException | None, replay: bool
    ) -> None: ...


class BaseInterceptor(Generic[CtxT]):
    """Convenience base: override only what you need."""

    async def before(self, ctx: CtxT, effect: Effect) -> None:
        return None

    async def after(
        self, ctx: CtxT, effect: Effect, result: Any, error: BaseException | None, replay: bool
    ) -> None:
        return None
