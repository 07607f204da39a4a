"""`StoreOutage`: how a worker reports that the store refuses what it asks, and when it works
again — one warning each way, not one per attempt.

Why: a full disk or a restarting PostgreSQL server makes every claim, lease renewal and write
fail for as long as it lasts; a line (or a traceback) per attempt buried the one fact that
matters, and when it ended, under thousands of copies."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("tether.worker")


class StoreOutage:
    def __init__(self, failing: str, working: str, then: str) -> None:
        """`failing`: what failed ("worker W could not claim runs"); `working`: the same,
        working again ("worker W claims runs"); `then`: what happens meanwhile."""
        self.failing = failing
        self.working = working
        self.then = then
        self.failures = 0
        self._since = 0.0

    @property
    def active(self) -> bool:
        return self.failures > 0

    def failing_for(self) -> float:
        """Seconds since the first refusal of this run of them (0 when none)."""
        return time.monotonic() - self._since if self.failures else 0.0

    def failed(self, exc: BaseException, *, traceback: bool = False) -> int:
        """Count one refusal (warning at the first, with `exc`'s traceback if asked);
        returns how many in a row."""
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
            log.warning("%s: %s; %s", self.failing, str(exc) or type(exc).__name__, self.then,
                        exc_info=exc if traceback else None)
        return self.failures

    def worked(self) -> None:
        if self.failures:
            log.warning("%s again, after %d failed attempts over %.1fs", self.working,
                        self.failures, time.monotonic() - self._since)
            self.failures = 0
