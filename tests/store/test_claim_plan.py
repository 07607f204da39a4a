"""The PostgreSQL claim reads in index order whatever the table's statistics say: on a table
never analyzed (a fresh deployment, a burst after every run had ended) the planner chose a
bitmap scan of every queued run and a sort — 4.5 ms a claim behind 10,000 queued runs, 0.07 ms
in index order — until autovacuum analyzed the table (after 10% of it changed)."""

from __future__ import annotations

from typing import Any

from tests.store.pg_support import PgSchema
from tether.store import RunRecord, open_store
from tether.store._postgres_tx import _queue_filter, claim_candidates


def test_the_claim_reads_in_index_order_on_a_table_never_analyzed() -> None:
    schema = PgSchema()
    store: Any = open_store(schema.url)
    try:
        def fill(tx: Any) -> None:
            for i in range(3000):  # a deep queue, and many waits of which few are due
                tx.insert_run(RunRecord(id=f"q{i:05d}", agent="m:a", status="queued",
                                        input=None, root_id=f"q{i:05d}", created_at=i + 1))
                tx.insert_run(RunRecord(id=f"w{i:05d}", agent="m:a", status="waiting",
                                        input=None, root_id=f"w{i:05d}", created_at=i + 1.5,
                                        wake_at=1e12 if i % 100 else 1.0))
        store.write(fill)
        analyzed = schema.execute(
            "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
            "WHERE relname = 'runs' AND schemaname = current_schema()")
        assert analyzed == [(None, None)]
        queue, params = _queue_filter(None, None)

        def plan(tx: Any) -> str:
            with tx.index_order():
                sql, args = claim_candidates(queue, params, 16, 2.0)
                rows = tx.conn.execute(("EXPLAIN " + sql).encode(), args).fetchall()
            return "\n".join(r[0] for r in rows)

        text = store.write(plan)
        assert "Bitmap" not in text, text
        assert "Index Scan using runs_by_status on runs r" in text, text
        assert "Index Scan using runs_by_wake on runs r" in text, text  # due: earliest first
        claimed = store.write(lambda tx: tx.claim("w1", 8, 30.0))
        assert claimed[:3] == ["q00000", "w00000", "q00001"]  # oldest first across both
    finally:
        store.close()
        schema.drop()


def test_a_claim_in_a_pipelined_batch_goes_through(caplog: Any) -> None:
    """A batch of several operations runs pipelined, where a statement string of two is
    refused: the claim's planner settings aborted every batch it was in (which then ran again
    op by op), seen as "pipeline aborted" warnings by the hundred."""
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
