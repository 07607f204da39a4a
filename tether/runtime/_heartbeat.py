"""A worker's heartbeat: it renews the leases of the runs it executes, and stops those whose
lease was lost or that were cancelled. `Worker` inherits it; kept apart from `worker.py`, which
serves, claims and executes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tether.store import RunRecord, StoreError

from ._outage import StoreOutage
from .committer import GroupCommitter
from .context import Context

log = logging.getLogger("tether.worker")


def renewal_outage(owner: str) -> StoreOutage:
    return StoreOutage(
        f"worker {owner} could not renew its leases", f"worker {owner} renews its leases",
        "trying again at every beat (a lease that expires meanwhile lets another worker take "
        "its run over, and this one stops it)")


class _Heartbeat:
    """`_heartbeat` and one `_beat`, over what the worker provides (declared here)."""

    owner: str
    lease_ttl: float
    _active: dict[str, asyncio.Task[None]]
    _contexts: dict[str, Context]
    _unwritten: dict[str, RunRecord]
    _renewal_outage: StoreOutage

    @property
    def committer(self) -> GroupCommitter:
        raise NotImplementedError

    def _stop(self, run_id: str, reason: str) -> None:
        raise NotImplementedError

    async def _heartbeat(self) -> None:
        interval = max(0.05, min(self.lease_ttl / 3, 1.0))
        while True:
            await asyncio.sleep(interval)
            await self._beat()

    def _leased(self, run_id: str) -> bool:
        """Whether `run_id`'s lease is in the store, or ordered before any write made now.

        A run started unwritten (`start_new`) has none until its first write is handed to the
        committer (`Context.provisional`), nor before its task first runs and makes its
        context: a beat in that turn of the event loop took it for a run whose lease was lost
        and stopped it before it was ever written (its caller got "never written")."""
        ctx = self._contexts.get(run_id)
        if ctx is None:
            return run_id not in self._unwritten
        return not ctx.provisional

    async def _beat(self) -> None:
        """Renew the leases of the runs executing here; stop those whose lease was lost or
        that were cancelled."""
        ids = [run_id for run_id in self._active if self._leased(run_id)]
        if not ids:
            return

        def renew(tx: Any) -> tuple[list[str], list[str]]:
            held = tx.renew(self.owner, ids, self.lease_ttl)
            return held, tx.cancel_requested(held)

        outage = self._renewal_outage
        try:
            held, cancelled = await self.committer.run(renew)
        except StoreError as exc:  # tried again at the next beat
            outage.failed(exc)
            return
        except Exception:  # not the store's refusal: a bug, told in full (and tried again)
            log.exception("lease renewal failed")
            return
        outage.worked()
        for run_id in set(ids) - set(held):
            self._stop(run_id, "lease")
        for run_id in cancelled:
            self._stop(run_id, "cancel")
