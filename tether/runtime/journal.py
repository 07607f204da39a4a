"""The replay index: a run's journal grouped by the ctx operation (key) that wrote it.

Keys are deterministic positions in the agent's program: `"3"` is the third ctx call of the
top-level coroutine, `"4:1.2"` the second call inside branch 1 of the gather at key 4. They do not
depend on timing, so concurrent branches replay correctly even when they finished in a different
order than last time.
"""

from __future__ import annotations

from collections.abc import Iterable

from tether.store import Event
from tether.store.vocabulary import FAMILY

__all__ = ["FAMILY", "Journal"]

class Journal:
    def __init__(self, events: Iterable[Event]) -> None:
        self.by_key: dict[str, list[Event]] = {}
        self.last_seq = 0
        self.count = 0
        for event in events:
            self.count += 1
            self.last_seq = event.seq
            if event.key is not None:
                self.by_key.setdefault(event.key, []).append(event)

    def get(self, key: str) -> list[Event] | None:
        return self.by_key.get(key)

    def keys(self) -> Iterable[str]:
        return self.by_key.keys()
