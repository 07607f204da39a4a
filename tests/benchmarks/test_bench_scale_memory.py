"""What bench-scale found about worker memory, kept from coming back: a value the store encodes
costs its size, not orjson's output buffer (orjson >= 3.12 hands back a ~4 KB buffer for a
47-byte result; every journal event a running run holds paid it)."""

from __future__ import annotations

import tracemalloc

from tether.store import dumps


def test_encoded_values_hold_their_size_not_a_buffer() -> None:
    message = {"role": "assistant", "content": "node a, step 3"}
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        held = [dumps(message) for _ in range(1000)]
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert len(held[0]) == 47
    assert grown / len(held) < 256, f"{grown / len(held):.0f} bytes held per 47-byte value"
