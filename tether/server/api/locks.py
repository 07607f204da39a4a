"""One lock per key (a run id), created on first use and dropped when nobody holds or waits
for it: a map that cannot grow with the ids a hostile client makes up.

Why: deciding an approval is read-check-send (`inbox.decide` reads the approval's decisions,
checks the new one against them, then sends it as a signal) and the API runs handlers side by
side in a thread pool. Two answers on one approval at once both passed the check — both were
told 200, both were audited, and only one counted. Holding the run's lock across the whole
decision makes the second one read the first.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class KeyedLocks:
    """`with locks.held(key):` — one thread at a time per key, any number across keys."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def held(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        with self._guard:
            return len(self._locks)
