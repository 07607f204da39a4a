"""How a worker finds work: its claim transaction, how long it sleeps between claims, and the
store's wake-ups (PostgreSQL's LISTEN/NOTIFY). Apart from `worker.py`, which executes what is
claimed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from tether.store import Store, StoreError

from ._outage import StoreOutage
from .queues import WorkerQueue

log = logging.getLogger("tether.worker")

# How long a worker woken by LISTEN/NOTIFY sleeps at most (at least its poll_interval). It stays
# because a NOTIFY is not durable: one sent while the listening connection was down is lost (the
# listener then ends silently, and this is all the polling left), as is a wake-up for a change
# that commits no NOTIFY; long enough to cost nothing idle, short enough to bound those cases.
# (A worker that saw a runnable run it could not take, held back by a tenant limit, keeps its
# poll_interval: a slot freed on another worker commits no wake-up.)
SAFETY_POLL_S = 5.0
# slept past a timer or lease expiry: the claim compares strictly, and clocks tick coarsely
_WAKE_MARGIN_S = 0.01
#: the longest a serving loop waits between claims while the store refuses them (`ClaimRetry`)
CLAIM_RETRY_MAX_S = 10.0


def claim_runs(tx: Any, *, owner: str, limit: int, ttl: float,
               tenant_limits: dict[str, int] | None, active: list[str],
               queue: WorkerQueue, next_wake: bool = False,
               ) -> tuple[list[tuple[str, int]], float | None]:
    """Claim runs and read each claim's fencing epoch in the same transaction; with
    `next_wake`, when the claim did not fill `limit`, also when the next run of the queue
    becomes claimable without a commit (`Tx.next_wake`), read in the same round trip."""
    ids = tx.claim(owner, limit, ttl, tenant_limits, exclude=active,
                   tenants=queue.tenants, agents=queue.agents)
    claimed = [(run_id, tx.attempts(run_id)) for run_id in ids]
    wake_at = None
    if next_wake and len(claimed) < limit:
        wake_at = tx.next_wake(tx.now(), owner=owner, tenants=queue.tenants,
                               agents=queue.agents)
    return claimed, wake_at


def idle_wait(poll_interval: float, listening: bool, looked: bool,
              wake_at: float | None, *, now: float) -> float:
    """How long the serving loop sleeps when it has nothing to start. A worker that hears
    NOTIFY (PostgreSQL) is woken by every commit that makes a run runnable or sets a timer,
    so it sleeps until the next timer or foreign lease expiry its claim saw, capped by the
    safety poll; a worker that does not (SQLite) polls every `poll_interval`."""
    if not listening:
        return poll_interval
    safety = max(poll_interval, SAFETY_POLL_S)
    if not looked or wake_at is None:  # full (a finishing run kicks), or nothing pending
        return safety
    delay = wake_at - now  # both by the store's clock
    if delay <= 0:  # claimable yet not claimed (a tenant limit, another worker's lock)
        return poll_interval
    return min(delay + _WAKE_MARGIN_S, safety)


class ClaimRetry:
    """A serving loop's claims that the store refused (locked by another program for longer
    than its busy timeout, PostgreSQL restarting): the worker keeps serving and tries again.

    Why not end `serve`: the runs it executes go on either way, but a dead loop leaves queued
    runs, timers and approvals to nobody, while an MCP or REST server around it still answers
    and looks healthy. The wait doubles from the poll interval up to `CLAIM_RETRY_MAX_S` (a
    kick, i.e. a run submitted here, tries at once); one warning when claims start failing,
    one when they work again."""

    def __init__(self, owner: str, poll_interval: float) -> None:
        self.owner = owner
        self.poll_interval = max(poll_interval, 0.1)
        self.outage = StoreOutage(
            f"worker {owner} could not claim runs", f"worker {owner} claims runs",
            f"trying again until the store answers (every {CLAIM_RETRY_MAX_S:g}s at most)")

    def failed(self, exc: Exception) -> float:
        """How long to wait before the next claim. Not only the store's refusals: whatever
        made a claim fail (a bug included) must not silently end the loop that serves the
        queue; what is not the store's refusal is logged with its traceback."""
        failures = self.outage.failed(exc, traceback=not isinstance(exc, StoreError))
        return min(CLAIM_RETRY_MAX_S, self.poll_interval * 2 ** min(failures - 1, 16))

    def worked(self) -> None:
        self.outage.worked()


def listen_for_work(store: Store, loop: asyncio.AbstractEventLoop,
                    kick: Callable[[], None]) -> Callable[[], None] | None:
    """Wake this worker when another process or host makes a run runnable, where the store
    can say so (PostgreSQL's LISTEN/NOTIFY); elsewhere the poll finds it. Returns the
    function that stops listening."""
    listen = getattr(store, "listen", None)
    if not callable(listen):
        return None

    def wake() -> None:  # from the store's listener thread
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(kick)

    try:
        stop: Callable[[], None] = listen(wake)
    except Exception as exc:  # listening is an optimisation: the poll still finds every run
        # the store's own refusal (no notifications through a pooler) needs no traceback
        log.warning("cannot listen for new work on %s (%s); polling every poll interval",
                    getattr(store, "url", store), exc,
                    exc_info=not isinstance(exc, StoreError))
        return None
    return stop
