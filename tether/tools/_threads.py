"""`in_thread`: run a sync tool function on a worker thread, for half the CPU of
`asyncio.to_thread`.

A sync tool must not stall the event loop, so it runs on a thread, as the MCP SDK's server runs
its sync tools. `asyncio.to_thread` pays for generality on every call: a `concurrent.futures`
future (with its own condition variable), a work item, the executor's idle-thread semaphore,
and an asyncio future chained to the first by callbacks both ways. A tool call needs one asyncio
future, set from the worker with `call_soon_threadsafe`: measured on a trivial function, 41.7
-> 21.7 µs of process CPU per call (benchmarks/bench_tool_call.py, "sync hand-off" parts).

What `to_thread` guarantees is kept: the function runs in a copy of the caller's context (the
egress check of a network tool's sync client lives there), a call cancelled before a thread
picks it up does not run, and at most `min(32, CPUs + 4)` threads exist (those of asyncio's
default executor), started as needed. A call that is cancelled or times out while running is
not interrupted (no thread can be); its outcome is dropped. The threads are daemons: a tool
still running when the interpreter exits does not hold the exit up, and a forked child starts
with none (they did not survive the fork).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context,
             Callable[[], Any]]


class Threads:
    """Worker threads and the queue of calls they take from: the tools' (`in_thread`), or a
    pool of a caller's own (`run`; the MCP server's stdio, whose reads block until the client
    writes and so must not hold a tool's thread)."""

    def __init__(self, limit: int | None = None, name: str = "tether-tool") -> None:
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        #: threads waiting for a call that no call has claimed yet
        self.idle = 0
        self.limit = limit or min(32, (os.cpu_count() or 1) + 4)
        self.name = name

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """`fn(*args)` on one of these threads, as `in_thread` does on the tools'."""
        return await _hand_off(self, fn, args, {})

    def submit(self, job: _Job) -> None:
        with self.lock:
            if self.idle:
                self.idle -= 1
            elif self.threads < self.limit:
                self.threads += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self.threads}",
                                 daemon=True).start()
        self.jobs.put(job)

    def _work(self) -> None:
        take = self.jobs.get
        while True:
            _run(take())  # a call of its own: nothing of the job is kept while waiting
            with self.lock:
                self.idle += 1


def _run(job: _Job) -> None:
    loop, future, context, call = job
    if future.cancelled():  # cancelled before it started: it does not run
        return
    try:
        result = context.run(call)
    except BaseException as exc:  # handed to the caller, as to_thread's executor does
        _answer(loop, future, _fail, exc)
    else:
        _answer(loop, future, _succeed, result)


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
            settle: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(settle, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the caller gave up (cancelled, timed out) meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


_Threads = Threads  # the name tests and older imports know
_THREADS = Threads()


def _after_fork() -> None:
    global _THREADS
    _THREADS = Threads()


os.register_at_fork(after_in_child=_after_fork)


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` on a worker thread, in a copy of the current context."""
    return await _hand_off(_THREADS, fn, args, kwargs)


def _hand_off(threads: Threads, fn: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> asyncio.Future[Any]:
    """The future of `fn(*args, **kwargs)`, queued for `threads`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
    threads.submit((loop, future, contextvars.copy_context(), call))
    return future
