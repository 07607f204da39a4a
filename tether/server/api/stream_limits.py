"""What one API key may hold of the server's event streams, and for how long.

A stream is cheap for its client and not for the server: it polls the store every `sse_poll`
seconds for as long as its run has not finished — days, for a run waiting for a person. Two
holes a hostile key used:

- no bound: one viewer key opened 1,500 streams on a waiting run and every other tenant's
  `GET /v1/runs` went from 3 ms to 300 ms. Now a key holds at most `max_streams_per_key` at
  once; the next one is a 429 that says so.
- no end: a key was checked when its stream opened, never after, so a stream kept carrying a
  run's new events (signal payloads, results) after `tether keys revoke`. Now a stream re-reads
  its key every `stream_key_recheck` seconds and ends when the key is gone.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tether.server.keys import Principal

from .errors import ApiError


@dataclass
class _Slot:
    """One open stream of a key; released once, by the stream's end or its collection (a
    response whose body never started, its client gone, still gives its slot back)."""

    slots: StreamSlots
    key_id: str
    done: bool = False

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.slots.release(self.key_id)


@dataclass
class StreamSlots:
    """Open streams per key id. Used on the server's event loop only (no lock needed)."""

    limit: int
    open: dict[str, int] = field(default_factory=dict)

    def take(self, who: Principal) -> _Slot:
        held = self.open.get(who.key_id, 0)
        if held >= self.limit:
            raise ApiError(429, "too_many_streams",
                           f"this key already holds {held} open event streams, the most one "
                           f"key may ({self.limit})", "Authorization header",
                           "close a stream you no longer read, or read with ?follow=false; "
                           "a stream ends by itself when its run finishes")
        self.open[who.key_id] = held + 1
        return _Slot(self, who.key_id)

    def release(self, key_id: str) -> None:
        left = self.open.get(key_id, 0) - 1
        if left > 0:
            self.open[key_id] = left
        else:
            self.open.pop(key_id, None)


def guarded(stream: AsyncIterator[bytes], slot: _Slot) -> AsyncIterator[bytes]:
    """`stream`, holding `slot` until it ends, fails, is closed or is dropped unstarted."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            slot.release()

    wrapped = body()
    weakref.finalize(wrapped, slot.release)
    return wrapped
