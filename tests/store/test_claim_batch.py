"""Claims on PostgreSQL inside a pipelined batch (several operations in one transaction)."""

from __future__ import annotations

from typing import Any

from tests.store.pg_support import PgSchema
from tether.store import RunRecord, open_store


def test_a_claim_in_a_pipelined_batch_goes_through(caplog: Any) -> None:
    """A batch of several operations runs pipelined, where some statements are refused (a
    string of two): a claim that issued one aborted every batch it was in, which then ran
    again op by op, seen as "pipeline aborted" warnings by the hundred."""
    import logging

    caplog.set_level(logging.WARNING)
    schema = PgSchema()
    store: Any = open_store(schema.url)
    try:
        store.write(lambda tx: [tx.insert_run(RunRecord(
            id=f"q{i}", agent="m:a", status="queued", input=None, root_id=f"q{i}",
            created_at=i + 1)) for i in range(4)])
        results = store.write_batch([lambda tx: tx.claim("w1", 2, 30.0),
                                     lambda tx: tx.claim("w2", 2, 30.0)])
        assert results == [(True, ["q0", "q1"]), (True, ["q2", "q3"])]
        assert not [r for r in caplog.records if "pipeline" in r.getMessage()], caplog.text
    finally:
        store.close()
        schema.drop()
