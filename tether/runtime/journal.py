"""The replay index: a run's journal grouped by the ctx operation (key) that wrote it.

Keys are deterministic positions in the agent's program: `"3"` is the third ctx call of the
top-level coroutine, `"4:1.2"` the second call inside branch 1 of the gather at key 4. They do not
depend on timing, so concurrent branches replay correctly even when they finished in a different
order than last time.
"""

from __future__ import annotations

from collections.abc import Iterable

from tether.store import Event

# Which ctx operation wrote an event kind: used to detect code that diverged from its journal.
FAMILY = {
    "step_started": "step",
    "step_completed": "step",
    "step_failed": "step",
    "step_in_doubt": "step",
    "step_resolved": "step",
    "now": "now",
    "random": "random",
    "timer_started": "sleep",
    "timer_fired": "sleep",
    "signal_waiting": "wait_for",
    "signal_received": "wait_for",
    "child_spawned": "spawn",
    "child_rejected": "spawn",
    "child_completed": "join",
    "log": "log",
    "annotation": "annotate",
    "run_flagged": "flag",
}


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
