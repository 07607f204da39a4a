"""A reading of the server's clock is only as good as its round trip: one taken while the
process was starved of CPU (the chaos test's 2 cores under a dozen workers) put a store's clock
1.3 s ahead of the server's, and its events' times after decisions made later. `ServerClock`
keeps the last good reading instead. The connection here stands in for the server's network
round trip; the clock arithmetic is Tether's own."""

from __future__ import annotations

import time
from typing import Any

from tether.store._postgres_clock import ServerClock


class _Answering:
    """A server `ahead` seconds ahead of this host, answering after `delay` seconds (its clock
    read at the start of the round trip: the worst case for a midpoint estimate)."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self.delay = 0.0
        self._read = 0.0

    def fetchone(self) -> tuple[float]:
        return (self._read,)

    def execute(self, sql: str) -> Any:
        self._read = time.time() + self.ahead
        time.sleep(self.delay)
        return self


def test_a_slow_reading_does_not_move_the_clock() -> None:
    server, clock = _Answering(), ServerClock()
    server.ahead = 5.0
    clock.read(server)  # type: ignore[arg-type]
    assert abs(clock.now() - (time.time() + 5.0)) < 0.02
    server.ahead, server.delay = 100.0, 0.2  # a reading 0.2 s long claims the server jumped
    clock.read(server)  # type: ignore[arg-type]
    assert abs(clock.now() - (time.time() + 5.0)) < 0.02
    assert clock.stale()  # the next write reads it again
    server.ahead, server.delay = 7.0, 0.0  # a quick reading is taken
    clock.read(server)  # type: ignore[arg-type]
    assert abs(clock.now() - (time.time() + 7.0)) < 0.02 and abs(clock.offset - 7.0) < 0.02
    assert not clock.stale()


def test_the_first_reading_is_taken_however_slow() -> None:
    server, clock = _Answering(), ServerClock()
    server.ahead, server.delay = 3.0, 0.1
    clock.read(server)  # type: ignore[arg-type]
    assert abs(clock.now() - (time.time() + 3.0)) < 0.1
