"""How a step's function is invoked: async on the loop, sync in a thread whose real outcome is
always awaited (a thread cannot be interrupted), with the idempotency key when it takes one."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ActivityError, clipped
from .interceptors import Effect

_CO_COROUTINE = inspect.CO_COROUTINE


def _is_async(fn: Callable[..., Any]) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None:  # plain functions: one flag test instead of inspect's unwrapping
        return bool(code.co_flags & _CO_COROUTINE)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callables with an async __call__
    )


async def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                timeout: float | None) -> Any:
    """Async functions run on the loop; sync ones in a thread so they cannot stall other runs."""
    if not _is_async(fn):
        return await _call_in_thread(fn, args, kwargs, timeout)
    call: Awaitable[Any] = fn(*args, **kwargs)
    if not timeout:
        return await call
    # not `wait_for`, which on Python 3.11 makes a task of every call: the step runs in the
    # run's own task, as it does without a timeout
    async with asyncio.timeout(timeout):
        return await call


class ThreadOutlivedCancel(Exception):
    """A cancelled caller waited for its step's thread (threads cannot be interrupted) so that
    the journal records what the thread really did; the cancellation is re-raised after."""

    def __init__(self, outcome: BaseException | None, result: Any,
                 cancel: asyncio.CancelledError) -> None:
        super().__init__("thread finished after cancellation")
        self.outcome = outcome
        self.result = result
        self.cancel = cancel


async def _call_in_thread(fn: Callable[..., Any], args: tuple[Any, ...],
                          kwargs: dict[str, Any], timeout: float | None) -> Any:
    """Run a sync activity in a thread. A thread cannot be stopped, so neither a timeout nor a
    cancellation may pretend it did: both wait for the thread to return and report its real
    outcome (a timeout is then a failure that says whether the effect happened late)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    started = loop.time()
    future = loop.run_in_executor(None, lambda: context.run(fn, *args, **kwargs))
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(future)
            error: BaseException | None = None
            break
        except asyncio.CancelledError as exc:
            if future.done() and not future.cancelled():
                error = future.exception()
                result = None if error else future.result()
                cancelled = cancelled or exc
                break
            cancelled = cancelled or exc
        except Exception as exc:
            error, result = exc, None
            break
    if cancelled is not None:
        raise ThreadOutlivedCancel(error, result, cancelled)
    elapsed = loop.time() - started
    if timeout is not None and elapsed > timeout:
        late = "completed" if error is None else f"failed ({type(error).__name__}: {error})"
        raise TimeoutError(f"did not finish within {timeout}s (the thread ran {elapsed:.2f}s "
                           f"and {late}; a thread cannot be interrupted)")
    if error is not None:
        raise error
    return result


def failure(effect: Effect, exc: Exception, timeout: float | None) -> ActivityError:
    if isinstance(exc, TimeoutError):
        return ActivityError(effect.name, "Timeout",
                             str(exc) or f"did not finish within {timeout}s", effect.key)
    return ActivityError(effect.name, type(exc).__name__, clipped(str(exc)), effect.key)


def accepts_idempotency_key(fn: Callable[..., Any]) -> bool:
    # Asked on every step: `inspect.signature` costs ~40 µs on a partial (the form every tool
    # call's function takes), reading the code object well under 1 µs.
    bound = 0
    inner = fn
    while isinstance(inner, functools.partial):
        if "idempotency_key" in inner.keywords:
            return True  # still a parameter (with a default the step's own key overrides)
        bound += len(inner.args)
        inner = inner.func
    if inspect.ismethod(inner):
        bound += 1  # self
        inner = inner.__func__
    code = getattr(inner, "__code__", None)
    if code is not None:  # plain functions: no signature object
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if "idempotency_key" not in names:
            return False
        position = names.index("idempotency_key")
        return position >= code.co_argcount or position >= bound  # not bound positionally
    try:
        return "idempotency_key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
