"""How a worker ends an execution that cannot go on: a run it must not execute here (guards or
an agent it cannot load, a record it cannot read) is left waiting with why (`_refuse`), and an
execution that ended in an exception is said in the log (`_report_failure`). `Worker` inherits
it; kept apart from `worker.py`, which serves, claims and executes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from tether.store import LeaseLost, Store, StoreError

from . import ops
from .committer import GroupCommitter
from .context import Context

log = logging.getLogger("tether.worker")


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Refusals:
    """`_refuse` and `_report_failure`, over what the worker provides (declared here)."""

    owner: str
    store: Store
    guards_retry_s: float
    executed: int
    refused: int
    _contexts: dict[str, Context]

    @property
    def committer(self) -> GroupCommitter:
        raise NotImplementedError

    async def _refuse(self, run_id: str, epoch: int, why: str, fix: str, *,
                      readable: bool = True) -> None:
        """Guards or an agent that cannot be loaded here, a journal that cannot be read:
        execute nothing, leave the run waiting with why (`why`) and what to do (`fix`).

        Running it without them would break the run's contract; failing it would lose a run
        that a correctly deployed worker (or a repaired journal) can finish; taking it up at
        every lease expiry, each time with a traceback, would say nothing more. So it waits
        (nothing in its journal changes) and any worker tries again at `wake_at`. `readable`:
        the run's record can be read (a suspension re-checks its cancel flag and signals)."""
        wake_at = self.store.now() + self.guards_retry_s
        reason = (f"not executed: worker {self.owner} {why}; {fix} (any worker tries again at "
                  f"{_clock(wake_at)})")
        log.warning("run %s: %s", run_id, reason)
        wait = (ops.suspend(run_id, self.owner, reason=reason, wake_at=wake_at, children=(),
                            signals=(), epoch=epoch) if readable
                else ops.set_aside(run_id, self.owner, reason=reason, wake_at=wake_at,
                                   epoch=epoch))
        try:
            await self.committer.run(wait, retry=True)
        except LeaseLost:
            log.info("run %s: lease lost while refusing it", run_id)
        finally:
            self.executed += 1
            self.refused += 1

    def _report_failure(self, run_id: str, task: asyncio.Task[None]) -> None:
        """Say why a run's execution ended in an exception (its end is not written), in one
        line when the store refused a write; without this asyncio says it, later, as "Task
        exception was never retrieved" and a traceback."""
        failure = None if task.cancelled() else task.exception()
        if failure is None:
            return
        ctx = self._contexts.get(run_id)
        if not isinstance(failure, StoreError):
            log.error("run %s: its execution failed: %s", run_id, failure, exc_info=failure)
        elif ctx is None or ctx.provisional:
            log.warning("run %s: not executed, it could not be written (%s); nothing of it "
                        "was stored", run_id, failure)
        else:  # its journal says where it is: any worker takes it up from there
            log.warning("run %s: stopped, the store failed it (%s); it is "
                        "resumed from its journal when its lease expires", run_id, failure)
