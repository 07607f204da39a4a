"""What a worker can say about its own health (`Worker.health()`): whether it serves, whether
its event loop still runs, whether the store takes its claims and lease renewals.

Why: a worker in production runs under a supervisor (Kubernetes, systemd) that restarts what
is dead and routes around what is not ready, and neither "the process exists" nor "the port
answers" tells that. The failure that matters most is silent: a step that blocks the event
loop (a sync call in async code) stops every run of the worker and its lease renewals, while
the process looks alive. The loop's pulse is a callback rescheduled every `PULSE_S`, not the
heartbeat task: a renewal waiting on a slow store is not a stalled loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ._outage import StoreOutage

#: how often the loop's pulse beats
PULSE_S = 0.5


class LoopPulse:
    """When the event loop last ran a callback of ours, by `time.monotonic()`."""

    def __init__(self) -> None:
        self.last: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.last = time.monotonic()
        self._handle = loop.call_later(PULSE_S, self._beat, loop)

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self.last = time.monotonic()
        self._handle = loop.call_later(PULSE_S, self._beat, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self.last = None

    def silent_s(self) -> float | None:
        """Seconds since the loop last ran the pulse (None: not started). Up to `PULSE_S`
        is normal."""
        return None if self.last is None else max(0.0, time.monotonic() - self.last)


@dataclass(frozen=True)
class WorkerHealth:
    """A snapshot of one worker (`Worker.health()`); `problems` judges it."""

    owner: str
    #: inside `serve`
    serving: bool
    #: seconds since the event loop last ran the worker's pulse (None: not serving)
    loop_silent_s: float | None
    #: claims refused in a row by the store (0: the last one worked), and for how long
    claim_failures: int
    claims_failing_s: float | None
    #: lease renewals refused in a row, and for how long
    renewal_failures: int
    renewals_failing_s: float | None
    executing: int
    concurrency: int
    #: executions ended since the worker started; `refused` of them ran nothing (guards this
    #: worker cannot load: the run waits for a worker that can)
    executed: int
    refused: int = 0

    def problems(self, *, stall_after: float = 10.0, ready: bool = False) -> list[str]:
        """Why this worker is not live (or, with `ready`, not ready to take work), each a
        sentence an operator can act on; empty when it is. `stall_after`: seconds the event
        loop may stay silent before the worker counts as stalled."""
        if not self.serving:
            return [f"worker {self.owner} is not serving (not started, or stopped)"]
        out = []
        silent = self.loop_silent_s or 0.0
        if silent > stall_after:
            out.append(f"worker {self.owner}'s event loop has not run for {silent:.1f}s "
                       f"(more than {stall_after:g}s): something blocks it, e.g. a step that "
                       "calls a blocking function from async code; its runs and lease "
                       "renewals are stopped meanwhile")
        if ready and self.claim_failures:
            out.append(f"worker {self.owner} cannot claim runs: the store refused "
                       f"{self.claim_failures} claim(s) in a row over "
                       f"{self.claims_failing_s or 0.0:.1f}s (see the worker's log)")
        if ready and self.renewal_failures:
            out.append(f"worker {self.owner} cannot renew its leases: the store refused "
                       f"{self.renewal_failures} renewal(s) in a row over "
                       f"{self.renewals_failing_s or 0.0:.1f}s (see the worker's log)")
        return out


def outage_state(outage: StoreOutage | None) -> tuple[int, float | None]:
    """How many refusals in a row `outage` counts, and for how many seconds."""
    if outage is None or not outage.active:
        return 0, None
    return outage.failures, outage.failing_for()
