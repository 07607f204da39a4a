"""`Tx.cancel_requested`: the heartbeat's one read of the cancel flag for every run a worker
holds, on both backends (before, the heartbeat read each held run's whole record)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from tether.store import RunRecord, Store, Tx
from tether.store._sqlite_tx import _SQLiteTx


def _insert_runs(store: Store, count: int) -> list[str]:
    ids = [f"r{i:05d}" for i in range(count)]

    def insert(tx: Tx) -> None:
        for run_id in ids:
            tx.insert_run(RunRecord(id=run_id, agent="m:f", status="running", input=None,
                                    root_id=run_id))
    store.write(insert)
    return ids


def _flag(store: Store, run_ids: list[str]) -> None:
    def flag(tx: Tx) -> None:
        for run_id in run_ids:
            tx.update_run(run_id, cancel_requested=1)
    store.write(flag)


def test_only_flagged_runs_come_back_in_the_order_asked(store: Store) -> None:
    ids = _insert_runs(store, 6)
    _flag(store, [ids[4], ids[1]])
    asked = [ids[5], ids[4], "r-unknown", ids[1], ids[0]]
    assert store.write(lambda tx: tx.cancel_requested(asked)) == [ids[4], ids[1]]
    assert store.write(lambda tx: tx.cancel_requested([])) == []


def test_more_runs_than_one_statement_may_bind(store: Store, backend: str) -> None:
    # SQLite builds before 3.32 bind at most 999 values per statement: the read goes in chunks
    ids = _insert_runs(store, 2500)
    flagged = ids[::7]
    _flag(store, flagged)

    def read(run_ids: list[str]) -> Callable[[Tx], list[str]]:
        def op(tx: Tx) -> list[str]:
            if backend == "sqlite":  # this build allows more: hold it to the old limit
                assert isinstance(tx, _SQLiteTx)
                conn = tx.conn
                previous = conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
                try:
                    return tx.cancel_requested(run_ids)
                finally:
                    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, previous)
            return tx.cancel_requested(run_ids)
        return op

    assert store.write(read(ids)) == flagged
    assert store.write(read(ids[::-1])) == flagged[::-1]
