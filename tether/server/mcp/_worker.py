"""The server's in-process worker, which also tells waiting requests that something changed.

An MCP request that waits for its run (a plain `tools/call`, `tasks/result`) must answer as soon
as the run settles, without polling the database in a tight loop. `Worker.kick` is called
whenever a run of this worker finishes or is submitted, so it doubles as the wake-up: every
waiter sleeps on the current `changed` event and re-reads its run when it fires. Runs moved by
other processes (an approval signed with `tether approve`) are seen at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tether.runtime import Worker
from tether.store import RunRecord, Store


class NotifyingWorker(Worker):
    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self._changed = asyncio.Event()

    def kick(self) -> None:
        super().kick()
        fired, self._changed = self._changed, asyncio.Event()
        fired.set()

    async def settled(self, run_id: str, *, poll: float = 0.25,
                      until: Any = None) -> RunRecord:
        """Wait until `run_id` finished (or `until(run)` is true) and return it."""
        while True:
            changed = self._changed
            run = self.store.get_run(run_id)
            if run is None:
                raise LookupError(f"run {run_id} does not exist")
            if run.finished or (until is not None and until(run)):
                return run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), poll)
