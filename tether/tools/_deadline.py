"""`bounded`: await a tool call with its timeout, without a timer per call.

`asyncio.wait_for` (a task and a timer per call on 3.11) and then `asyncio.timeout` (a timer,
two coroutines and a state machine per call) were the largest part of a trivial tool call's
CPU after validation. Tool timeouts are seconds long and nearly every call ends long before its
deadline, so an event loop here keeps one timer for all the calls in flight, set for the
earliest deadline: a call registers its deadline (a dict entry) and removes it when it ends;
when the timer fires it cancels the calls that are due and sets itself for the next deadline.

The cancellation is `asyncio.timeout`'s: the calling task is cancelled, and the
`CancelledError` becomes a `TimeoutError` only when the deadline caused it and nobody else also
cancelled the task (counted with `Task.cancelling`/`uncancel`, as Python 3.12's `timeout` does),
so an outer cancellation still propagates as a cancellation.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import weakref
from collections.abc import Awaitable
from typing import Any


class _Call:
    """One call in flight: its task, and whether its deadline cancelled it."""

    __slots__ = ("expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.expired = False


class _Deadlines:
    """The calls in flight on one event loop and the one timer that watches them.

    Neither the loop nor its timer handle is held (a handle holds its loop, and this object is
    the value of a WeakKeyDictionary keyed by the loop): a timer set for an earlier deadline
    makes the one set before it stale, and a stale timer does nothing when it fires."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.calls: dict[_Call, float] = {}
        #: when the live timer fires (inf: none is set)
        self.timer_at = math.inf

    def add(self, loop: asyncio.AbstractEventLoop, call: _Call, deadline: float) -> None:
        self.calls[call] = deadline
        if deadline < self.timer_at:
            self._set_timer(loop, deadline)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        loop.call_at(when, self._expire, when)
        self.timer_at = when

    def _expire(self, when: float) -> None:
        loop = self.loop()
        if when != self.timer_at or loop is None:
            return  # stale: an earlier timer replaced it (and has fired, or will first)
        self.timer_at = math.inf
        now = loop.time()
        due = [call for call, deadline in self.calls.items() if deadline <= now]
        for call in due:
            del self.calls[call]
            call.expired = True
            call.task.cancel()
        if self.calls:
            self._set_timer(loop, min(self.calls.values()))


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary())
_last: _Deadlines | None = None  # the loop of the last call (nearly always the one running)


def _deadlines(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    global _last
    found = _last
    if found is None or found.loop() is not loop:
        found = _LOOPS.get(loop)
        if found is None:
            found = _LOOPS[loop] = _Deadlines(loop)
        _last = found
    return found


async def bounded(awaitable: Awaitable[Any], timeout: float) -> Any:
    """`await awaitable`, raising `TimeoutError` if it takes more than `timeout` seconds (it is
    cancelled then); must run in a task (as `asyncio.timeout` must)."""
    task = asyncio.current_task()
    if task is None:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # not awaited, and not to be reported as such
        raise RuntimeError("a tool call's timeout needs to run inside an asyncio task")
    loop = task.get_loop()
    deadlines = _deadlines(loop)
    call = _Call(task)
    cancelling = task.cancelling()
    deadlines.add(loop, call, loop.time() + timeout)
    try:
        result = await awaitable
    except asyncio.CancelledError:
        if call.expired and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        deadlines.calls.pop(call, None)
    if call.expired:  # the call swallowed the cancellation and returned: the count rebalanced
        task.uncancel()
    return result
