"""Narrow views of a run's `Context`, for the modules `Context` itself is built from.

`_steps`, `_children` and the effects in `effects/` do their work on the run's context, but
`context.py` imports them: were they to name `Context`, even for type checking only, the modules
would form a circle. They take these Protocols instead, which say exactly what they use;
`Context` satisfies them structurally (checked by mypy wherever it passes itself on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tether.store import Event, NewEvent, RunRecord, Store, Tx

from .executors.resources import Resources
from .interceptors import Effect


class StepView(Protocol):
    """What an effect built on `ctx.step` uses: the step itself and the run's id."""

    @property
    def run_id(self) -> str: ...

    async def step(self, name: str, fn: Callable[..., Any], *args: Any,
                   idempotent: bool | None = None, timeout: float | None = None,
                   meta: dict[str, Any] | None = None,
                   resources: Resources | None = None) -> Any: ...


class RunView(Protocol):
    """What `ctx.step` (`_steps`) and children and `gather` (`_children`) use of the context:
    the run, its journal keys and replay lookup, the interceptor calls and the write path."""

    run: RunRecord
    store: Store
    stop_reason: str | None
    max_depth: int

    @property
    def run_id(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def depth(self) -> int: ...

    @property
    def options(self) -> dict[str, Any]: ...

    def _next_key(self) -> str: ...

    def _recorded(self, key: str, family: str, name: str | None) -> list[Event] | None: ...

    async def _before(self, effect: Effect) -> None: ...

    async def _after(self, effect: Effect, result: Any, error: BaseException | None,
                     replay: bool) -> None: ...

    def _new_event(self, kind: str, key: str | None, name: str | None, data: Any,
                   *, raw: bytes | None = None) -> NewEvent: ...

    def _append(self, kind: str, key: str | None, name: str | None, data: Any = None,
                *, raw: bytes | None = None) -> int: ...

    @property
    def provisional(self) -> bool: ...

    async def _append_durable(self, kind: str, key: str | None, name: str | None,
                              data: Any = None) -> int: ...

    async def _write_durable(self, events: list[NewEvent],
                             then: Callable[[Tx], Any] | None = None) -> Any: ...
