"""`bounded`, a tool call's timeout with one timer per event loop: calls time out on time, an
outer cancellation stays a cancellation, and nothing piles up on the loop."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import pytest

from tether.tools import ToolTimeoutError, tool
from tether.tools._deadline import _LOOPS, _deadlines, bounded

LONG = 60.0  # generous: CI machines are loaded; the waits below end as soon as they can


def test_a_short_deadline_set_after_a_long_one_still_fires_on_time() -> None:
    async def main() -> tuple[float, str]:
        release = asyncio.Event()

        async def wait() -> str:
            await release.wait()
            return "done"

        long_call = asyncio.ensure_future(bounded(wait(), LONG))
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await bounded(asyncio.sleep(LONG), 0.05)
        took = time.monotonic() - started
        release.set()
        return took, await long_call  # the long call was not disturbed

    took, answer = asyncio.run(main())
    assert answer == "done"
    assert 0.04 <= took < LONG / 2


def test_an_outer_cancellation_stays_a_cancellation() -> None:
    async def main() -> int:
        inner = asyncio.ensure_future(bounded(asyncio.sleep(LONG), LONG))
        await asyncio.sleep(0)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await inner
        return len(_deadlines(asyncio.get_running_loop()).calls)

    assert asyncio.run(main()) == 0


def test_a_call_that_swallows_its_cancellation_returns_and_leaves_no_cancel_behind() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            return "late"
        return "never"

    async def main() -> tuple[str, int]:
        answer = await bounded(stubborn(), 0.01)
        task = asyncio.current_task()
        assert task is not None
        return answer, task.cancelling()

    assert asyncio.run(main()) == ("late", 0)


def test_many_calls_leave_one_timer_at_most() -> None:
    @tool(timeout=LONG)
    async def echo(x: int) -> int:
        return x

    async def main() -> tuple[int, int]:
        for i in range(500):
            assert (await echo.run({"x": i})).output == i
        loop: Any = asyncio.get_running_loop()
        return len(loop._scheduled), len(_deadlines(loop).calls)  # asyncio's own timer heap

    assert asyncio.run(main()) == (1, 0)


def test_timeouts_of_sync_and_async_tools_on_several_loops() -> None:
    @tool(timeout=0.05)
    async def stuck() -> None:
        await asyncio.sleep(LONG)

    for _ in range(2):  # a fresh loop each time: each gets its own timer
        result = asyncio.run(stuck.run({}))
        assert not result.ok and result.error is not None and result.error.type == "timeout"
    with pytest.raises(ToolTimeoutError, match="stuck"):
        asyncio.run(stuck.invoke({}))


def test_a_finished_loop_is_not_kept_alive() -> None:
    seen: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        seen.append(weakref.ref(asyncio.get_running_loop()))
        await bounded(asyncio.sleep(0), LONG)

    asyncio.run(main())
    gc.collect()
    assert seen[0]() is None
    assert all(loop is not None for loop in _LOOPS)


def test_outside_a_task_it_says_so() -> None:
    async def never() -> None:
        raise AssertionError("not to be run")

    errors: list[BaseException] = []
    loop = asyncio.new_event_loop()

    def callback() -> None:  # on the loop, but not in a task
        try:
            bounded(never(), 1.0).send(None)
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    try:
        loop.call_soon(callback)
        loop.run_forever()
    finally:
        loop.close()
    assert len(errors) == 1 and "inside an asyncio task" in str(errors[0])
