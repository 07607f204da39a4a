"""Where a step's function executes, apart from the worker's own process.

The durable machinery of a step (journal, idempotency key, in-doubt handling, retries) stays the
worker's; an executor only runs the function somewhere else and reports what happened, in the
runtime's terms rather than its own: the function's result, the exception the function raised,
or one of the errors below when the machinery around the function failed. A step is sent to the
worker's executor only when it declares `resources`; every other step runs in the worker's process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..errors import TetherError
from .resources import Resources


@runtime_checkable
class Executor(Protocol):
    """Runs `fn(*args, **kwargs)` with `resources` and returns its result, or raises what fn
    raised, or `StepLost` / `StepOutOfMemory` / `StepUnschedulable`. `name` is the step's (for
    the cluster's own views of its tasks)."""

    name: str  # recorded with each attempt it runs ("ray")

    async def run(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any], resources: Resources, timeout: float | None) -> Any: ...


class StepLost(TetherError):
    """The process or machine executing the step died (a Ray worker killed, a node lost) or
    the step was abandoned after its timeout: whether its effect took place is unknown. For an
    idempotent step this is a failed attempt the retry policy may repeat; for any other step it
    is in doubt, like a step whose worker crashed."""


class StepOutOfMemory(TetherError):
    """The step was killed for using more memory than it had (Ray's memory monitor), or the
    function raised MemoryError. A retry policy with `on_oom` asks for more on the next attempt."""


class StepUnschedulable(TetherError):
    """No machine of the cluster can ever provide what the step asks for."""


#: the error types (as journaled in `step_failed`) that mean "ran out of memory"
OUT_OF_MEMORY_TYPES = frozenset({"StepOutOfMemory", "MemoryError"})
