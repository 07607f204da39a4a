"""The server's in-process worker, which also tells waiting requests that something changed.

An MCP request that waits for its run (a plain `tools/call`, `tasks/result`) must answer as soon
as the run settles, without polling the database in a tight loop. `Worker.kick` is called
whenever a run of this worker finishes or is submitted, so it doubles as the wake-up: every
waiter sleeps on the current `changed` event and re-reads its run when it fires. Runs moved by
other processes (an approval signed with `tether approve`) are seen at the next poll.

The end of a tool-call run wakes its waiter but not this worker's claim loop: such a run (one
`tool:` step, no parent, no children) makes no other run runnable by ending, so the loop's claim
would find nothing — one more transaction per call, on the committer's thread, that the next
call's submission would queue behind. Only when the worker was full does its end free a slot
worth a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

from tether.runtime import Worker
from tether.server.mcp._agent import CALL_AGENT
from tether.store import RunRecord, Store

log = logging.getLogger("tether.server.mcp")


class NotifyingWorker(Worker):
    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self._changed = asyncio.Event()
        self._writers: set[str] = set()
        self.on_claim = self._claimed
        self.claim_listeners.append(self._watch_end)
        self.end_listeners.append(self._note_end)
        # runs a request waits for in `settled`, and those of them that ended, as committed
        self._awaited: set[str] = set()
        self._ended_runs: dict[str, RunRecord] = {}
        #: why an awaited run's execution ended in an exception (its end may not be written)
        self._failures: dict[str, BaseException] = {}
        self._quiet_kick = False
        #: wake-ups of the claim loop skipped because a tool-call run ended (see module doc)
        self.quiet_ends = 0

    # A request that submits a run and waits for it is a writer like a run: counted by the
    # group committer (`attach`) from its submission until this worker claims the run, so that
    # with nothing else going on the submission and the claim commit inline on the loop
    # instead of paying two thread hand-offs (the committer's rule for a lone writer); with
    # other runs executing, everything still goes through the committer's batches.
    def hold(self, run_id: str) -> None:
        """`run_id` is about to be submitted by a request that will wait for it."""
        self.committer.attach()
        self._writers.add(run_id)

    def release(self, run_id: str) -> None:
        """Stop counting the request of `run_id` (claimed, or given up on); idempotent."""
        if run_id in self._writers:
            self._writers.discard(run_id)
            self.committer.detach()

    def _claimed(self, run_id: str) -> None:
        self.release(run_id)

    def _watch_end(self, run_id: str) -> None:
        task = self._active.get(run_id)
        if task is not None:  # runs before the worker's own done callback (added after this)
            task.add_done_callback(partial(self._ended, run_id))

    def _ended(self, run_id: str, task: asyncio.Task[None]) -> None:
        if run_id in self._awaited and not task.cancelled() \
                and (failure := task.exception()) is not None:
            self._failures[run_id] = failure  # the caller is told (`settled`); the log is
            # told by the worker's own callback
        ctx = self._contexts.get(run_id)
        if ctx is None or ctx.run.agent != CALL_AGENT or ctx.run.parent_id is not None:
            return
        if len(self._active) >= self.concurrency:
            return  # it held the last slot: the loop may have runs to claim now
        # the worker's done callback, queued right after this one, kicks: that kick wakes the
        # waiters only; the flag is cleared after it in any case
        self._quiet_kick = True
        asyncio.get_running_loop().call_soon(self._unquiet)

    def _note_end(self, run: RunRecord) -> None:
        if run.id in self._awaited:
            self._ended_runs[run.id] = run

    def _unquiet(self) -> None:
        self._quiet_kick = False

    def kick(self) -> None:
        if self._quiet_kick:
            self._quiet_kick = False
            self.quiet_ends += 1
        else:
            super().kick()
        fired, self._changed = self._changed, asyncio.Event()
        fired.set()

    @property
    def changed(self) -> asyncio.Event:
        """The event the next `kick` sets: taken before a submission, it tells `settled` whether
        anything happened since (`since=`)."""
        return self._changed

    async def settled(self, run_id: str, *, poll: float = 0.25, until: Any = None,
                      since: asyncio.Event | None = None) -> RunRecord:
        """Wait until `run_id` finished (or `until(run)` is true) and return it.

        Woken by `kick`, which this worker calls when one of its runs ends or waits; `poll` only
        bounds how late a change made by another process is seen. `since`: `changed` as taken
        before the run was submitted; while it has not fired, this worker has not moved the run
        (a freshly claimed run is still at its start), so the first read waits for it."""
        self._awaited.add(run_id)
        try:
            return await self._settled(run_id, poll=poll, until=until, since=since)
        finally:
            self._awaited.discard(run_id)
            self._ended_runs.pop(run_id, None)
            self._failures.pop(run_id, None)

    async def _settled(self, run_id: str, *, poll: float, until: Any,
                       since: asyncio.Event | None) -> RunRecord:
        if since is not None and not since.is_set():
            await _fired(since, poll)
        while True:
            changed = self._changed
            # ended by this worker: as committed, without reading it back
            run = self._ended_runs.pop(run_id, None) or self.store.get_run(run_id)
            if run is None and run_id not in self._active:
                failure = self._failures.get(run_id)
                why = (f"its execution failed before it could be written: {failure}"
                       if failure is not None else "see the server's log for why")
                raise LookupError(f"run {run_id} does not exist: it was never written ({why})")
            if run is None:  # executing here, not yet written (`Worker.start_new`)
                await _fired(changed, poll)
                continue
            if run.finished or (until is not None and until(run)):
                return run
            await _fired(changed, poll)


async def _fired(event: asyncio.Event, timeout: float) -> None:
    """Wait until `event` is set, at most `timeout` seconds. Not `asyncio.wait_for`, which on
    Python 3.11 makes a task of the wait (and costs a turn of the loop to start it): every
    plain `tools/call` waits here once for its run."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
