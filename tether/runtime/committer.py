"""Group commit: many runs' writes, one durable transaction.

Every write a worker process makes goes through one `GroupCommitter` thread. While a transaction
commits (one fsync), new writes queue up; the next transaction takes all of them. So durability
costs one fsync per batch instead of one per step, and a writer waiting on `submit` knows its
write — and every write it submitted before — is on disk when the future resolves.

With nobody to batch with — one run executing, nothing queued — an awaited write commits
inline on the caller's thread instead: the thread hand-off and the event-loop wake-up would
cost more CPU than the commit itself, and there is no other write to share the fsync with.
As soon as a second run is attached, every write goes through the thread again.

A run's own writes (`submit(retry=True)`) outlast a store that refuses writes as a whole
(`StoreUnavailable`: a full disk, a PostgreSQL server away): the thread tries them again, every
`WRITE_RETRY_MAX_S` at most, until they commit, and the run goes on where it was — the failure
was the store's, not the run's. Other writes (claims, lease renewals) fail at once meanwhile:
their callers have their own retry, and must stay free to see a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from tether.store import NewEvent, Store, StoreUnavailable, Tx

from ._outage import StoreOutage

Op = Callable[[Tx], Any]
#: the longest a run's write that the store refused waits before it is tried again
WRITE_RETRY_MAX_S = 2.0
_WRITE_RETRY_FIRST_S = 0.05
_Item = tuple[Op, "asyncio.Future[Any]", asyncio.AbstractEventLoop, bool]


_CLOSE = object()


class GroupCommitter:
    def __init__(self, store: Store, *, max_batch: int = 2000, inline: bool = True) -> None:
        """`inline=False`: never commit on the caller's thread. For a worker that shares its
        event loop with latency-sensitive work (an HTTP server): a lone run's commit then waits
        on this thread instead of holding the loop for one fsync."""
        self.store = store
        self.max_batch = max_batch
        self.inline_allowed = inline
        # a C-level queue: a put costs no Python lock dance on the event loop's side (the
        # hand-off to this thread is paid once per durable step)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        # held while a transaction is written, by this thread or an inline committer
        self._write_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._inflight = 0  # submitted to the thread and not yet committed
        self.producers = 0  # runs executing against this committer (see attach)
        self.batches = 0  # transactions written by the thread
        self.inline = 0  # transactions written inline by a lone run
        self.ops = 0  # ops committed, either way
        #: called with (run id, events) for the journal events each op appended, once the op
        #: committed, in commit order, on the committing thread (while no other write can
        #: commit). Live trace export follows its runs so instead of reading back what was just
        #: written. While empty, ops are not wrapped at all.
        self.commit_listeners: list[Callable[[str, Sequence[NewEvent]], None]] = []
        #: set by `close`: writes waiting for the store give up
        self._giving_up = threading.Event()
        #: the store's refusal, while the thread waits for it with a run's writes
        self._retrying: StoreUnavailable | None = None
        self.outage = StoreOutage(
            "the store refuses writes", "the store accepts writes",
            "the runs executing here wait for it, their writes tried again every "
            f"{WRITE_RETRY_MAX_S:g}s at most (other writes fail meanwhile)")
        self._thread = threading.Thread(target=self._run, name="tether-committer", daemon=True)
        self._thread.start()

    def attach(self) -> None:
        """A run starts executing against this committer (inline commits need it alone)."""
        with self._count_lock:
            self.producers += 1

    def detach(self) -> None:
        with self._count_lock:
            self.producers -= 1

    def submit(self, op: Op, *, inline: bool = False, retry: bool = False
               ) -> asyncio.Future[Any]:
        """Queue `op`; the future resolves once the op's transaction is durable. Ops are applied
        in submission order, so a caller need not await every write: awaiting a later one implies
        the earlier ones are durable too.

        `inline=True` (for a caller about to await the future anyway): when exactly one run is
        attached (`attach`) and nothing is queued or being written, commit right here and return
        a done future. Callers that never attach (a batch of writers of their own) always get
        the thread, so their writes share transactions.

        `retry=True` (a run's own writes): a refusal by the store as a whole
        (`StoreUnavailable`) is not an answer; the op waits and is tried again until it
        commits or the committer closes. Without it, such an op fails at once while the store
        refuses writes."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("the group committer is closed")
        fut: asyncio.Future[Any] = loop.create_future()
        refusing = self._retrying
        if refusing is not None and not retry:
            fut.set_exception(refusing)
            return fut
        if self.commit_listeners:
            op = _Appends(op)
        if (inline and refusing is None and self.inline_allowed and self.producers == 1
                and self._commit_inline(op, fut, retry)):
            return fut
        with self._count_lock:
            self._inflight += 1
        self._queue.put((op, fut, loop, retry))
        return fut

    def _commit_inline(self, op: Op, fut: asyncio.Future[Any], retry: bool) -> bool:
        if not self._write_lock.acquire(blocking=False):
            return False  # the thread is writing a batch: join the next one
        try:
            with self._count_lock:
                if self._inflight:
                    return False  # earlier ops are queued: order requires they go first
            results = self.store.write_batch([op], wait=False)
            if results is None:
                return False  # another process is writing: queue rather than block the loop
            ((ok, value),) = results
            if not ok and retry and isinstance(value, StoreUnavailable):
                return False  # the thread waits for the store and tries it again
            self.inline += 1
            self.ops += 1
            if ok and op.__class__ is _Appends:  # the lone run's every step: no lists, no zip
                self._announce_one(op)
        finally:
            self._write_lock.release()
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
        return True

    async def run(self, op: Op, *, retry: bool = False) -> Any:
        return await self.submit(op, inline=True, retry=retry)

    def _run(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            batch: list[_Item] = []
            while True:
                if item is _CLOSE:
                    closing = True
                else:
                    batch.append(item)
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
        # a submit that raced with close() and queued behind the sentinel: fail it, never hang
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _CLOSE:
                _, fut, loop, _ = item
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, [(fut, (False, RuntimeError(
                        "the group committer is closed")))])

    def _commit(self, batch: list[_Item]) -> None:
        results = self._write(batch)
        delay = _WRITE_RETRY_FIRST_S
        while (refused := _refusal(results)) is not None:
            waiting = [item for item in batch if item[3]]
            self._settle([item for item in batch if not item[3]], [(False, refused)])
            if not waiting:
                return
            self._retrying = refused
            self.outage.failed(refused)
            if self._giving_up.wait(delay):
                self._retrying = None
                self._settle(waiting, [(False, refused)])
                return
            delay = min(delay * 2, WRITE_RETRY_MAX_S)
            batch = self._joining(waiting, refused)
            results = self._write(batch)
        self._retrying = None
        self.outage.worked()
        self.batches += 1
        self._settle(batch, results)

    def _joining(self, waiting: list[_Item], refused: StoreUnavailable) -> list[_Item]:
        """The ops waiting for the store and, behind them in order, those queued meanwhile
        that wait too; the others fail now. Stops at `_CLOSE`, which it puts back."""
        while len(waiting) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _CLOSE:
                self._queue.put(_CLOSE)
                break
            if item[3]:
                waiting.append(item)
            else:
                self._settle([item], [(False, refused)])
        return waiting

    def _write(self, batch: list[_Item]) -> list[tuple[bool, Any]]:
        try:
            with self._write_lock:
                answered = self.store.write_batch([op for op, _, _, _ in batch])
                if answered is not None and self.commit_listeners:
                    self._announce([op for op, _, _, _ in batch], answered)
            assert answered is not None  # wait=True always answers
            return answered
        except Exception as exc:  # a broken store must fail its writers, not hang them
            return [(False, exc)] * len(batch)

    def _settle(self, batch: list[_Item], results: list[tuple[bool, Any]]) -> None:
        """Hand `batch` its results (one result: the same for all) on their loops."""
        if not batch:
            return
        if len(results) == 1 and len(batch) > 1:
            results = results * len(batch)
        with self._count_lock:
            self._inflight -= len(batch)
        self.ops += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, tuple[bool, Any]]]] = (
            defaultdict(list)
        )
        for (_, fut, loop, _), result in zip(batch, results, strict=True):
            by_loop[loop].append((fut, result))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, items)

    def _announce(self, ops: list[Op], results: list[tuple[bool, Any]]) -> None:
        for op, (ok, _) in zip(ops, results, strict=True):
            if ok and isinstance(op, _Appends):
                self._announce_one(op)

    def _announce_one(self, op: _Appends) -> None:
        """An op that committed: its journal appends, to every listener."""
        listeners = self.commit_listeners
        for run_id, events in op.appended:
            for listener in listeners:
                try:  # a plain try, not contextlib.suppress: this runs for every op
                    listener(run_id, events)
                except Exception:  # a listener's failure is never a commit's
                    continue

    def close(self) -> None:
        """Commit what was submitted, then stop the thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._giving_up.set()
            self._queue.put(_CLOSE)
        self._thread.join(timeout=30)


class _Appends:
    """An op whose journal appends are kept for `commit_listeners` (an op can run twice: a
    refused inline attempt is queued again). The transaction notes them itself (`Tx.appended`):
    a proxy in front of every call the op makes cost more than the noting."""

    __slots__ = ("appended", "op")

    def __init__(self, op: Op) -> None:
        self.op = op
        self.appended: list[tuple[str, Sequence[NewEvent]]] = []

    def __call__(self, tx: Tx) -> Any:
        self.appended = []
        outer = tx.appended
        tx.appended = self.appended
        try:
            return self.op(tx)
        finally:
            tx.appended = outer


def _refusal(results: list[tuple[bool, Any]]) -> StoreUnavailable | None:
    """The store's refusal of a whole batch (every op failed with `StoreUnavailable`)."""
    if not results or any(ok or not isinstance(v, StoreUnavailable) for ok, v in results):
        return None
    refused: StoreUnavailable = results[0][1]
    return refused


def _settle(items: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for fut, (ok, value) in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
