"""The write path of a run's context: how its journal events reach the disk.

`Context` inherits it. Every write is one fenced operation handed to the `GroupCommitter`; events
appended without waiting ride along with the run's next write (one commit per step), and a write
that fails in the background is raised at the run's next write. Kept apart from `context.py` so
the ctx operations read as what they journal, not how.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tether.store import NewEvent, RunRecord, Tx, dumps

from .committer import GroupCommitter
from .errors import NonDeterminismError
from .journal import FAMILY

# A run whose writes commit inline yields to its event loop at least this often (seconds).
YIELD_EVERY = 0.005


class _Writes:
    """Base of `Context`: the run's identity and claim, its next `seq`, and the write path."""

    def __init__(
        self,
        run: RunRecord,
        committer: GroupCommitter,
        owner: str,
        *,
        last_seq: int,
        epoch: int | None,
        read_only: bool,
    ) -> None:
        self.run = run
        # replay-only execution (Tether.replay): any write means the code went past its journal
        self.read_only = read_only
        self.epoch = epoch  # the claim this execution holds; every write is fenced by it
        self.owner = owner
        self._committer = committer
        self._seq = last_seq
        self._background_error: BaseException | None = None
        self._pending: list[NewEvent] = []  # appended, not yet handed to the committer
        self._flush_scheduled = False
        self._last_yield = time.monotonic()

    def _new_event(self, kind: str, key: str | None, name: str | None, data: Any,
                   *, raw: bytes | None = None) -> NewEvent:
        self._seq += 1
        payload = raw if raw is not None else (dumps(data) if data is not None else None)
        return NewEvent(self._seq, kind, key, name, payload, time.time())

    def _check_writable(self, event: NewEvent) -> None:
        if self.read_only:
            raise NonDeterminismError(
                self.run.id, event.key or "(run)", "nothing more (the journal ends here)",
                f"{FAMILY.get(event.kind, event.kind)} {event.name!r}")

    def _write(self, events: list[NewEvent], then: Callable[[Tx], Any] | None = None, *,
               awaited: bool = False) -> asyncio.Future[Any]:
        """One fenced op: the events appended but not yet submitted, then `events`, then
        `then(tx)`. The future resolves when the op is durable (and so is everything before it:
        the committer applies ops in order). `awaited`: the caller waits for it right away, so
        the committer may write it inline when this run is alone."""
        if events:
            self._check_writable(events[0])
        self._raise_background_error()
        return self._submit_op(events, then, inline=awaited)

    def _submit_op(self, events: list[NewEvent], then: Callable[[Tx], Any] | None = None, *,
                   inline: bool = False) -> asyncio.Future[Any]:
        if self._pending:
            events = self._pending + events
            self._pending = []
        run_id, owner, epoch = self.run.id, self.owner, self.epoch

        def op(tx: Tx) -> Any:
            tx.check_lease(run_id, owner, epoch)
            if events:
                tx.append_events(run_id, events)
            return then(tx) if then is not None else None

        fut = self._committer.submit(op, inline=inline)
        if fut.done():
            self._note_background(fut)
        else:
            fut.add_done_callback(self._note_background)
        return fut

    def _append(self, kind: str, key: str | None, name: str | None, data: Any = None,
                *, raw: bytes | None = None) -> None:
        """Append without waiting. The event rides along with the run's next write (typically
        a step's completion with the next step's start: one op, one commit per step) or, if
        none comes in this turn of the event loop, is submitted on its own. Ordering holds
        either way: the next durable write implies this event is on disk."""
        event = self._new_event(kind, key, name, data, raw=raw)
        self._check_writable(event)
        self._raise_background_error()
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_pending)

    def flush_pending(self) -> None:
        """Submit the events appended but not yet submitted, without waiting. The worker calls
        it before any run-state write of its own, so the journal is ordered before it."""
        self._flush_scheduled = False
        if self._pending:
            self._submit_op([])

    def take_pending(self, kind: str, data: Any = None) -> list[NewEvent]:
        """The events not yet submitted plus a run-level event, to commit together with the
        run's final status."""
        events, self._pending = [*self._pending, self._new_event(kind, None, None, data)], []
        return events

    async def _append_durable(self, kind: str, key: str | None, name: str | None,
                              data: Any = None) -> int:
        event = self._new_event(kind, key, name, data)
        await self._write_durable([event])
        return event.seq

    def write(self, op: Callable[[Tx], Any]) -> asyncio.Future[Any]:
        """A store operation of a cross-cutting layer (the guards' budget counters), fenced by
        this run's lease and applied in journal order, in the same transaction as the run's
        pending events when it can; resolves when durable. Nothing is appended to the journal."""
        return self._write([], op)

    async def write_durable(self, op: Callable[[Tx], Any]) -> Any:
        """`write`, then wait until it is durable; returns `op`'s result."""
        return await self._write_durable([], op)

    async def _write_durable(self, events: list[NewEvent],
                             then: Callable[[Tx], Any] | None = None) -> Any:
        """`_write` and wait until it is durable; returns `then`'s result. A write committed
        inline comes back done, and awaiting a done future does not yield: a run of such steps
        would keep the event loop from its heartbeat, cancellations and other runs, so yield at
        least every `YIELD_EVERY` seconds."""
        fut = self._write(events, then, awaited=True)
        if not fut.done():
            return await fut
        now = time.monotonic()
        if now - self._last_yield > YIELD_EVERY:
            self._last_yield = now
            await asyncio.sleep(0)
        return fut.result()

    def _note_background(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None and self._background_error is None:
            self._background_error = fut.exception()

    def _raise_background_error(self) -> None:
        if self._background_error is not None:
            raise self._background_error

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        await self._write_durable([])
        self._raise_background_error()
