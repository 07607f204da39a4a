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
        clock: Callable[[], float] = time.time,
        lease_ttl: float | None = None,
    ) -> None:
        """`clock`: the store's (`Store.now`), which event times are written in. `lease_ttl`:
        the claim's; every write extends the lease to that long from its commit at least
        (`Tx.check_lease`), so no claim can follow a write before the heartbeat renews."""
        self.run = run
        self._clock = clock
        # replay-only execution (Tether.replay): any write means the code went past its journal
        self.read_only = read_only
        self.epoch = epoch  # the claim this execution holds; every write is fenced by it
        self.lease_ttl = lease_ttl
        self.owner = owner
        self._committer = committer
        self._seq = last_seq
        self._background_error: BaseException | None = None
        self._pending: list[NewEvent] = []  # appended, not yet handed to the committer
        self._flush_scheduled = False
        self._last_yield = time.monotonic()
        # A run created in memory by this process (`begin_unwritten`): how to create and claim
        # it in the store, and the background writes held until its first write carries them.
        self._unwritten: Callable[[Tx], Any] | None = None
        self._held: list[tuple[list[NewEvent], Callable[[Tx], Any], asyncio.Future[Any]]] = []

    def begin_unwritten(self, create: Callable[[Tx], Any], submitted: Any) -> None:
        """This run exists only in memory: `create` (inserting it, claimed by this execution)
        and its `run_submitted` event (with `submitted` as data) are written by its first
        write, in the same transaction. See `provisional`."""
        self._unwritten = create
        self._pending.append(self._new_event("run_submitted", None, None, submitted))

    @property
    def provisional(self) -> bool:
        """Nothing of this run has been handed to the committer yet.

        A run a caller in this process submits and waits for (`Worker.start_new`: an MCP tool
        call) is not written when it is created: its creation, claim and first events ride
        with its first write — the start of a step that must be durable before it runs, or
        else the run's end — so a one-step call is one commit instead of three. Until then a
        crash loses the run together with the caller waiting for it, and the store has no
        trace of either; so a step that is safe to repeat needs no durable start (`_steps`),
        and background writes (the guards' counters) are held for the first write."""
        return self._unwritten is not None

    def _new_event(self, kind: str, key: str | None, name: str | None, data: Any,
                   *, raw: bytes | None = None) -> NewEvent:
        self._seq += 1
        payload = raw if raw is not None else (dumps(data) if data is not None else None)
        return NewEvent(self._seq, kind, key, name, payload, self._clock())

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
        if not awaited and then is not None:
            return self._hold(events, then)
        return self._submit_op(events, then, inline=awaited)

    def _hold(self, events: list[NewEvent], then: Callable[[Tx], Any]) -> asyncio.Future[Any]:
        """A background write (the guards' usage counters after every effect) rides with the
        run's next write, in order (`_submit_op`), or is submitted at the end of this turn of
        the event loop like an appended event; its future resolves when it commits. Submitted
        apart, it went to the committer's thread, and the run's next write queued behind it
        there instead of committing inline."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(self._note_background)
        self._held.append((self._pending + events, then, fut))
        self._pending = []
        self._schedule_flush()
        return fut

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._unwritten is None:
            # (a provisional run's writes wait for its first write)
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_pending)

    def _submit_op(self, events: list[NewEvent], then: Callable[[Tx], Any] | None = None, *,
                   inline: bool = False) -> asyncio.Future[Any]:
        if self._pending:
            events = self._pending + events
            self._pending = []
        run_id, owner, epoch, ttl = self.run.id, self.owner, self.epoch, self.lease_ttl
        if self._unwritten is not None or self._held:
            return self._submit_with_held(events, then, inline=inline)

        def op(tx: Tx) -> Any:
            tx.check_lease(run_id, owner, epoch, ttl=ttl)
            if events:
                tx.append_events(run_id, events)
            return then(tx) if then is not None else None

        fut = self._committer.submit(op, inline=inline, retry=True)
        if fut.done():
            self._note_background(fut)
        else:
            fut.add_done_callback(self._note_background)
        return fut

    def _submit_with_held(self, events: list[NewEvent], then: Callable[[Tx], Any] | None, *,
                          inline: bool) -> asyncio.Future[Any]:
        """One op: a provisional run's creation and claim (its first write), the held
        background writes in the order they were made, then this write — one transaction, all
        or nothing."""
        create, held = self._unwritten, self._held
        self._unwritten, self._held = None, []
        run_id, owner, epoch, ttl = self.run.id, self.owner, self.epoch, self.lease_ttl
        results: list[Any] = []

        def op(tx: Tx) -> Any:
            results.clear()  # an op may run again (a refused inline attempt, a retried batch)
            if create is not None:
                create(tx)
            tx.check_lease(run_id, owner, epoch, ttl=ttl)
            for before, held_op, _ in held:
                if before:
                    tx.append_events(run_id, before)
                results.append(held_op(tx))
            if events:
                tx.append_events(run_id, events)
            return then(tx) if then is not None else None

        def settle_held(fut: asyncio.Future[Any]) -> None:
            error = (asyncio.CancelledError() if fut.cancelled() else fut.exception())
            for i, (_, _, held_fut) in enumerate(held):
                if held_fut.done():
                    continue
                if error is not None:
                    held_fut.set_exception(error)
                else:
                    held_fut.set_result(results[i])

        # a run not yet written does not wait for a store that refuses writes: nothing is lost
        # by failing it, and its caller, waiting here, is told now (an MCP client)
        fut = self._committer.submit(op, inline=inline, retry=create is None)
        if held:
            if fut.done():
                settle_held(fut)
            else:
                fut.add_done_callback(settle_held)
        if fut.done():
            self._note_background(fut)
        else:
            fut.add_done_callback(self._note_background)
        return fut

    def _append(self, kind: str, key: str | None, name: str | None, data: Any = None,
                *, raw: bytes | None = None) -> int:
        """Append without waiting; returns the event's seq. The event rides along with the
        run's next write (typically a step's completion with the next step's start: one op,
        one commit per step) or, if none comes in this turn of the event loop (nor, for a
        provisional run, before its first write), is submitted on its own. Ordering holds
        either way: the next durable write implies this event is on disk."""
        event = self._new_event(kind, key, name, data, raw=raw)
        self._check_writable(event)
        self._raise_background_error()
        self._pending.append(event)
        self._schedule_flush()
        return event.seq

    def flush_pending(self) -> None:
        """Submit the events appended but not yet submitted, without waiting. The worker calls
        it before any run-state write of its own, so the journal is ordered before it."""
        self._flush_scheduled = False
        if self._pending or self._held or self._unwritten is not None:
            self._submit_op([])

    def submit_last(self, op: Callable[[Tx], Any]) -> asyncio.Future[Any]:
        """The run's last write (`op` records its end, with `take_pending`'s events), after
        the held background writes and, for a provisional run, its creation: one op."""
        return self._submit_op([], op, inline=True)

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
