"""Counting a worker's write transactions, for the tests that pin how many commits an operation
costs (`submit_and_claim`, `start_new`)."""

from __future__ import annotations

from typing import Any

from tether.runtime import Worker


def count_transactions(worker: Worker) -> list[int]:
    """Counts the store's write transactions from now on (one slot, incremented)."""
    counted = [0]
    write_batch = worker.store.write_batch

    def counting(ops: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return write_batch(ops, **kwargs)

    worker.store.write_batch = counting  # type: ignore[method-assign]
    return counted
