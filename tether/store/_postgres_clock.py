"""The PostgreSQL server's clock as this host reads it, without asking the server each time.

Why: workers on many hosts compare lease expiries and timers that other hosts wrote. By each
host's own clock, one running ahead by more than a lease took live runs from healthy workers
(a non-idempotent step then stopped, in doubt) and fired timers early; by the server's, every
host agrees whatever its clock says. Between readings it goes on by the monotonic clock, which
a step of this host's wall clock (NTP, a resumed VM, `date -s`) does not move: going on by
`time.time()`, a step of 120 s made a worker's claims see healthy leases as expired (or its
renewals write expired ones) until the next reading, and a live step ran twice
(tests/store/test_pg_crash_hunt_skew.py).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

#: how often (seconds) a store reads the server's clock again, on a connection it has anyway
CLOCK_REFRESH_S = 10.0
#: a reading whose round trip took longer than this, and than 3x the quickest one seen, is not
#: taken: its error is up to half the round trip (the process starved of CPU, a connection
#: waited for), and one taken under load put a store's clock 1.3 s ahead of the server's
SLOW_READING_S = 0.05


class ServerClock:
    def __init__(self) -> None:
        #: the server's clock minus this host's wall clock at the last reading (`tether doctor`)
        self.offset = 0.0
        self._read_at = -CLOCK_REFRESH_S
        self._quickest: float | None = None  # the shortest round trip of a reading so far
        #: (the server's clock, this host's monotonic clock) at the last reading: one tuple, so
        #: a thread reading `now` never pairs a new reading with an old instant
        self._last = (time.time(), time.monotonic())

    def now(self) -> float:
        """The server's time (a Unix timestamp) by the last reading and the monotonic clock."""
        server_at, read_at = self._last
        return server_at + (time.monotonic() - read_at)

    def stale(self) -> bool:
        return time.monotonic() - self._read_at > CLOCK_REFRESH_S

    def read(self, conn: psycopg.Connection[Any]) -> None:
        """Measure the server's clock (at the midpoint of the round trip)."""
        before, wall = time.monotonic(), time.time()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        after = time.monotonic()
        if row is None:
            return
        trip = after - before
        if self._quickest is not None and trip > max(SLOW_READING_S, 3 * self._quickest):
            self._read_at = after - CLOCK_REFRESH_S  # stale: the next write reads again
            return  # too uncertain: the last reading stands meanwhile
        self._quickest = trip if self._quickest is None else min(self._quickest, trip)
        server = float(row[0])
        self._last = (server, (before + after) / 2)
        self.offset = server - (wall + trip / 2)
        self._read_at = after
