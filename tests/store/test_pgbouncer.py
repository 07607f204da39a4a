"""The PostgreSQL store behind PgBouncer in transaction mode (a real one, `make pgbouncer`), as
managed PostgreSQL services put one in front: each transaction may run on another server
session, so nothing that lives in a session holds — psycopg's prepared statements, LISTEN, SET.

Before: a worker's writes failed with DuplicatePreparedStatement (or "prepared statement does
not exist") once a statement had run 5 times, runs ended failed or stuck, and LISTEN, which
registers on whichever server session ran it, never woke the worker (5 s safety polls)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from tests.store.pg_support import PooledDatabase
from tether import Context, Tether
from tether.store import open_store
from tether.store._postgres_listen import ListenUnavailable, listen


async def two_steps(ctx: Context, n: int) -> int:
    a: int = await ctx.step("a", lambda: n + 1)
    b: int = await ctx.step("b", lambda: a * 2)
    return b


@pytest.fixture
def pooled() -> Iterator[PooledDatabase]:
    db = PooledDatabase()
    yield db
    db.drop()


async def test_a_worker_behind_a_transaction_pooler_executes_every_run(
        pooled: PooledDatabase, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    t = Tether(pooled.url)
    try:
        ids = t.submit_many(two_steps, list(range(200)))
        worker = t.worker(poll_interval=0.05)
        await asyncio.wait_for(worker.serve(until=lambda: worker.executed >= len(ids)), 120)
        results = {r.id: (r.status, r.result) for r in t.runs(limit=1000)}
        assert results == {run_id: ("succeeded", (n + 1) * 2) for n, run_id in enumerate(ids)}
        assert t.store.prepares is False  # type: ignore[attr-defined]
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "a transaction pooler (PgBouncer in transaction mode?) is in between" in messages
        assert "cannot listen for new work" in messages and "polling" in messages
    finally:
        t.close()


def test_listening_through_a_pooler_is_refused_at_once_not_silently_deaf(
        pooled: PooledDatabase) -> None:
    store = open_store(pooled.url)
    try:
        with pytest.raises(ListenUnavailable, match="did not arrive within"):
            listen(store._conninfo, store._channel, lambda: None)  # type: ignore[attr-defined]
        # straight to the server, the same check passes
        direct = open_store(pooled.direct)
        try:
            stop = direct.listen(lambda: None)  # type: ignore[attr-defined]
            stop()
        finally:
            direct.close()
    finally:
        store.close()
