"""The machinery behind `ctx.step`: an activity runs at most once unless it is safe to repeat.

A step's journaled outcome is returned on replay; a step whose start is journaled but whose
outcome is not is run again only when idempotent, and is otherwise in doubt until a human
decides. Live, a step is journaled as started (durably, before `fn` runs), then completed or
failed; a pure step journals only its result. Interceptors see every step, live and replayed,
and may short-circuit a live one. It is the largest ctx operation, so it lives apart from
`context.py`, where `Context.step` documents it and calls `step` here. It takes the context as
a `RunView` (what it uses of it), so this module does not depend on `context.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

from tether.store import dumps, loads

from ._children import SIBLING_FAILED
from ._views import RunView
from .calls import ThreadOutlivedCancel, accepts_idempotency_key, call, failure
from .errors import ActivityError, InDoubt, NotSerializable, ShortCircuit
from .executors import Executor, Resources, StepLost
from .interceptors import Effect
from .retry import DEFAULT_STEP_RETRY, StepRetry


async def step(ctx: RunView, name: str, fn: Callable[..., Any], args: tuple[Any, ...], *,
               idempotent: bool | None, timeout: float | None, meta: dict[str, Any] | None,
               pure: bool, resources: Resources | None = None, retry: StepRetry | None = None,
               executor: Executor | None = None) -> Any:
    """`Context.step`, which documents it."""
    key = ctx._next_key()
    takes_key = accepts_idempotency_key(fn)
    if idempotent is None:
        # declared with @activity, else: a function that takes the idempotency key promises
        # to use it, so running it again is safe (DESIGN §3)
        declared = getattr(fn, "__tether_idempotent__", None)
        idempotent = takes_key if declared is None else bool(declared)
    effect = Effect("step", name, key, args, dict(meta or {}))
    events = ctx._recorded(key, "step", name)
    attempt = 1
    first_seq: int | None = None
    policy = retry or DEFAULT_STEP_RETRY
    policy.check(name, resources)
    if events:
        last = events[-1]
        first_seq = events[0].seq
        attempt = 1 + sum(1 for e in events if e.kind == "step_started")
        if last.kind == "step_completed":
            await ctx._after(effect, last.data, None, True)
            return last.data
        if last.kind == "step_failed" and policy.retries(last.data.get("type", ""), attempt - 1):
            # the run stopped between a failed attempt and the next: go on with the next one
            resources = policy.next_resources(_last_resources(events, resources),
                                              last.data.get("type", ""))
        elif last.kind == "step_failed":
            error = _activity_error(name, key, last.data)
            await ctx._after(effect, None, error, True)
            raise error
        if last.kind == "step_resolved" and last.data["action"] == "skip":
            await ctx._after(effect, last.data.get("result"), None, True)
            return last.data.get("result")
        if last.kind == "step_resolved" and last.data["action"] == "fail":
            error = ActivityError(name, "ResolvedAsFailed",
                                  "an operator resolved this in-doubt step as failed", key)
            await ctx._after(effect, None, error, True)
            raise error
        if last.kind not in ("step_resolved", "step_failed") and not idempotent:
            if last.kind != "step_in_doubt":
                await ctx._append_durable("step_in_doubt", key, name, {"attempt": attempt - 1})
            raise InDoubt(ctx.run_id, key, name, first_seq)
    if pure:
        return await _run_pure(ctx, effect, fn, args, timeout,
                               executor if resources is not None else None, resources)
    return await _run_step(ctx, effect, fn, args, idempotent, takes_key, timeout, attempt,
                           first_seq, _Placement(resources, policy, executor))


async def _run_pure(ctx: RunView, effect: Effect, fn: Callable[..., Any], args: tuple[Any, ...],
                    timeout: float | None, executor: Executor | None,
                    resources: Resources | None) -> Any:
    await ctx._before(effect)
    try:
        if executor is not None and resources is not None:
            result = await executor.run(effect.name, fn, args, {}, resources, timeout)
        else:
            result = await call(fn, args, {}, timeout)
    except ThreadOutlivedCancel as late:  # pure: nothing to record, just stop
        raise late.cancel from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = failure(effect, exc, timeout)
        ctx._append("step_failed", effect.key, effect.name,
                    {"type": error.error_type, "message": error.message})
        await ctx._after(effect, None, error, False)
        raise error from exc
    return await _complete(ctx, effect, result)


class _Placement(NamedTuple):
    """Where and how often a step executes: its resources, retry policy and executor."""

    resources: Resources | None
    retry: StepRetry
    executor: Executor | None


async def _run_step(ctx: RunView, effect: Effect, fn: Callable[..., Any], args: tuple[Any, ...],
                    idempotent: bool, takes_key: bool, timeout: float | None, attempt: int,
                    first_seq: int | None, placement: _Placement) -> Any:
    name, key = effect.name, effect.key
    try:
        await ctx._before(effect)
    except ShortCircuit as short:
        return await _short_circuit(ctx, effect, attempt, short)
    resources, policy, executor = placement
    while True:  # one turn per attempt, each journaled; the policy decides on another
        started: dict[str, Any] = {"attempt": attempt}
        if idempotent:
            started["idempotent"] = True
        if effect.meta:
            started["meta"] = effect.meta
        if resources is not None:
            started["resources"] = resources.to_json()
            if executor is not None:
                started["executor"] = executor.name
        if idempotent and ctx.provisional:
            # nothing of the run is on disk yet (`provisional`): a crash loses the run and its
            # waiting caller together, so a start that is safe to repeat goes with the outcome
            seq = ctx._append("step_started", key, name, started)
        else:
            seq = await ctx._append_durable("step_started", key, name, started)
        first_seq = first_seq or seq  # every attempt of the step gets the same key
        try:
            return await _attempt(ctx, effect, fn, args, takes_key, timeout, first_seq,
                                  resources, executor)
        except StepLost as lost:
            if not idempotent:  # its effect may have taken place: a human decides
                await ctx._append_durable("step_in_doubt", key, name,
                                          {"attempt": attempt, "why": str(lost)})
                raise InDoubt(ctx.run_id, key, name, first_seq) from lost
            error = failure(effect, lost, timeout)
            ctx._append("step_failed", key, name,
                        {"type": error.error_type, "message": error.message})
            if not policy.retries(error.error_type, attempt):
                await ctx._after(effect, None, error, False)
                raise error from lost
        except _Retryable as retryable:
            if not policy.retries(retryable.error.error_type, attempt):
                await ctx._after(effect, None, retryable.error, False)
                raise retryable.error from retryable.__cause__
            error = retryable.error
        resources = policy.next_resources(resources, error.error_type)
        attempt += 1


class _Retryable(Exception):
    """An attempt failed (journaled): the retry policy decides whether it is the last."""

    def __init__(self, error: ActivityError) -> None:
        super().__init__(error.message)
        self.error = error


async def _attempt(ctx: RunView, effect: Effect, fn: Callable[..., Any], args: tuple[Any, ...],
                   takes_key: bool, timeout: float | None, first_seq: int,
                   resources: Resources | None, executor: Executor | None) -> Any:
    name, key = effect.name, effect.key
    kwargs: dict[str, Any] = {}
    if takes_key:
        kwargs["idempotency_key"] = f"{ctx.run_id}:{first_seq}"
    try:
        if resources is not None and executor is not None:
            result = await executor.run(name, fn, args, kwargs, resources, timeout)
        else:
            result = await call(fn, args, kwargs, timeout)
    except ThreadOutlivedCancel as late:  # journal what the thread did, then stop
        if late.outcome is None:
            with contextlib.suppress(ActivityError):
                await _complete(ctx, effect, late.result)
        else:
            ctx._append("step_failed", key, name, {"type": type(late.outcome).__name__,
                                                    "message": str(late.outcome)})
        raise late.cancel from None
    except asyncio.CancelledError as exc:
        if ctx.stop_reason == "cancel" or SIBLING_FAILED in exc.args:
            ctx._append("step_failed", key, name, {"type": "Cancelled",
                                                    "message": "the run was cancelled"})
        raise
    except StepLost:
        raise
    except Exception as exc:
        error = failure(effect, exc, timeout)
        ctx._append("step_failed", key, name,
                    {"type": error.error_type, "message": error.message})
        raise _Retryable(error) from exc
    return await _complete(ctx, effect, result)


def _last_resources(events: list[Any], declared: Resources | None) -> Resources | None:
    """The resources of the step's last journaled attempt (what a retry grows from)."""
    for event in reversed(events):
        if event.kind == "step_started" and isinstance(event.data, dict) \
                and "resources" in event.data:
            return Resources.from_json(event.data["resources"])
    return declared


async def _complete(ctx: RunView, effect: Effect, result: Any) -> Any:
    try:
        encoded = dumps(result)
    except TypeError as exc:
        error = ActivityError(
            effect.name, "NotSerializable",
            str(NotSerializable(f"the result of step {effect.name!r}", str(exc))), effect.key)
        # `ran`: it returned, its effect took place (a retry of the run says so)
        ctx._append("step_failed", effect.key, effect.name,
                    {"type": "NotSerializable", "message": error.message, "ran": True})
        await ctx._after(effect, None, error, False)
        raise error from exc
    ctx._append("step_completed", effect.key, effect.name, raw=encoded)
    value = loads(encoded)
    await ctx._after(effect, value, None, False)
    return value


async def _short_circuit(ctx: RunView, effect: Effect, attempt: int, short: ShortCircuit) -> Any:
    try:
        encoded = dumps(short.result)
    except TypeError as exc:
        raise NotSerializable("a short-circuit result", str(exc)) from exc
    started: dict[str, Any] = {"attempt": attempt, "short_circuit": short.meta or True}
    if effect.meta:
        started["meta"] = effect.meta
    ctx._append("step_started", effect.key, effect.name, started)
    ctx._append("step_completed", effect.key, effect.name, raw=encoded)
    value = loads(encoded)
    await ctx._after(effect, value, None, False)
    return value


def _activity_error(name: str, key: str, data: dict[str, Any]) -> ActivityError:
    return ActivityError(name, data.get("type", "Error"), data.get("message", ""), key)
