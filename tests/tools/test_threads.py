"""`in_thread`, the hand-off of sync tool functions to worker threads: what `asyncio.to_thread`
promised (the loop keeps running, the caller's context, errors, concurrency, a cancelled call
that has not started does not run) on real threads, a real fork and a real closed loop."""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tether.tools import _threads
from tether.tools._threads import in_thread

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
LONG = 60.0  # generous: CI machines are loaded; every wait below ends early when it can


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[_threads._Threads]:
    """A pool of our own (two threads at most), so a test sees only its own calls."""
    pool = _threads._Threads()
    pool.limit = 2
    monkeypatch.setattr(_threads, "_THREADS", pool)
    yield pool


def _wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + LONG
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_sync_call_runs_off_the_loop_which_keeps_running(threads: Any) -> None:
    release = threading.Event()

    def blocking() -> tuple[bool, str]:
        return release.wait(LONG), threading.current_thread().name

    async def main() -> tuple[bool, str]:
        call = asyncio.ensure_future(in_thread(blocking))
        await asyncio.sleep(0)
        release.set()  # only reachable while the call waits on another thread
        return await call

    released, name = asyncio.run(main())
    assert released and name.startswith("tether-tool-")


def test_the_call_sees_the_callers_context_and_cannot_change_it(threads: Any) -> None:
    def read_and_set(suffix: str) -> str:
        seen = WHO.get()
        WHO.set("the thread")
        return seen + suffix

    async def main() -> tuple[str, str]:
        WHO.set("the caller")
        got = await in_thread(read_and_set, suffix="!")
        return got, WHO.get()

    assert asyncio.run(main()) == ("the caller!", "the caller")


def test_errors_reach_the_caller_as_raised(threads: Any) -> None:
    def boom(n: int) -> None:
        raise KeyError(f"no item {n}")

    with pytest.raises(KeyError, match="no item 7"):
        asyncio.run(in_thread(boom, 7))


def test_calls_run_at_once_up_to_the_limit_and_threads_are_reused(threads: Any) -> None:
    both = threading.Barrier(2, timeout=LONG)  # broken unless two calls wait at once

    async def main() -> list[int]:
        return list(await asyncio.gather(in_thread(both.wait), in_thread(both.wait)))

    assert sorted(asyncio.run(main())) == [0, 1]

    async def many() -> list[int]:
        return [await in_thread(int, str(i)) for i in range(50)]

    assert asyncio.run(many()) == list(range(50))
    assert threads.threads == 2


def test_a_call_cancelled_before_a_thread_takes_it_does_not_run(threads: Any) -> None:
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        busy = [asyncio.ensure_future(in_thread(release.wait, LONG)) for _ in range(2)]
        await asyncio.sleep(0)
        late = asyncio.ensure_future(in_thread(ran.append, "late"))
        await asyncio.sleep(0)
        late.cancel()
        release.set()
        assert await asyncio.gather(*busy) == [True, True]
        with pytest.raises(asyncio.CancelledError):
            await late
        # the queued job has been taken and dropped once both threads are idle again
        while threads.idle < 2:
            await asyncio.sleep(0.005)

    asyncio.run(main())
    assert ran == []


def test_a_call_finishing_after_its_loop_closed_is_dropped_quietly(threads: Any) -> None:
    release, finished = threading.Event(), threading.Event()
    errors: list[Any] = []
    hook = threading.excepthook
    threading.excepthook = errors.append
    try:
        def slow() -> str:
            release.wait(LONG)
            finished.set()
            return "late"

        async def main() -> None:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await in_thread(slow)

        asyncio.run(main())  # the loop is closed now; the call is still running
        release.set()
        assert finished.wait(LONG)
        _wait_until(lambda: threads.idle == 1, "the thread to come back idle")
    finally:
        threading.excepthook = hook
    assert errors == []


def _in_child(answer: Any) -> None:
    answer.put(asyncio.run(in_thread(sum, [1, 2, 3])))


def test_a_forked_child_starts_threads_of_its_own() -> None:
    assert asyncio.run(in_thread(sum, [1, 1])) == 2  # the parent has a thread now
    fork = multiprocessing.get_context("fork")
    answer = fork.Queue()
    child = fork.Process(target=_in_child, args=(answer,))
    child.start()
    try:
        assert answer.get(timeout=LONG) == 6
    finally:
        child.join(LONG)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
