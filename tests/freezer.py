"""Freezing a process at random (SIGSTOP, a sleep, SIGCONT), as a loaded host, a paused
container or a profiler does: its timers (heartbeats, leases, polls) then fire in orders a
quiet machine never shows. Used by the `*_frozen` tests of tests/server and tests/runtime."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator

#: how long one freeze lasts, drawn from these (seconds)
FREEZES_S = (0.001, 0.01, 0.05, 0.3, 0.8)


class Freezer:
    """Freezes process `pid` for a random one of `FREEZES_S` every 0-`gap` s, from a thread of
    its own, until the `with` block ends (the process is left running); `held()` keeps it
    running meanwhile. Seeded: the same seed draws the same freezes."""

    def __init__(self, pid: int, seed: int, gap: float = 0.02) -> None:
        self.pid, self.freezes, self.gap = pid, 0, gap
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._random.uniform(0, self.gap)):
            with self._lock:
                os.kill(self.pid, signal.SIGSTOP)
                try:
                    time.sleep(self._random.choice(FREEZES_S))
                finally:
                    os.kill(self.pid, signal.SIGCONT)
                self.freezes += 1

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            yield

    def __enter__(self) -> Freezer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
