"""Group commit: many runs' writes, one durable transaction.

Every write a worker process makes goes through one `GroupCommitter` thread. While a transaction
commits (one fsync), new writes queue up; the next transaction takes all of them. So durability
costs one fsync per batch instead of one per step, and a writer waiting on `submit` knows its
write — and every write it submitted before — is on disk when the future resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tether.store import Store, Tx

Op = Callable[[Tx], Any]


class GroupCommitter:
    def __init__(self, store: Store, *, max_batch: int = 2000) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self.ops = 0
        self._thread = threading.Thread(target=self._run, name="tether-committer", daemon=True)
        self._thread.start()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue `op`; the future resolves once the op's transaction is durable. Ops are applied
        in submission order, so a caller need not await every write: awaiting a later one implies
        the earlier ones are durable too."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            self._pending.append((op, fut, loop))
            self._cond.notify()
        return fut

    async def run(self, op: Op) -> Any:
        return await self.submit(op)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            results = self.store.write_batch([op for op, _, _ in batch])
            self.batches += 1
            self.ops += len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, tuple[bool, Any]]]] = (
                defaultdict(list)
            )
            for (_, fut, loop), result in zip(batch, results, strict=True):
                by_loop[loop].append((fut, result))
            for loop, items in by_loop.items():
                with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, items)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)


def _settle(items: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for fut, (ok, value) in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
