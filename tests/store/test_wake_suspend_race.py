"""A parent suspending for its child while the child finishes, on PostgreSQL, in the two
interleavings that lost the wake-up before `wake` locked the parent's row (8741afe).

PostgreSQL runs the two transactions side by side (READ COMMITTED): the child's `finish` reads the
parent to wake it, the parent's `suspend` reads the child to see whether it is done. Each read
before the other committed, each saw the other as not done, and the parent waited forever
("waiting for child run" in the PostgreSQL chaos test, 1 of 200 trials). These tests drive the two
transactions step by step, each on a connection of its own in a thread of its own, and stop one
inside its transaction while the other runs, so the bad interleaving happens every time; with the
lock the second one waits for the first one's commit instead, and the parent ends up runnable.
SQLite has one writer at a time, so it cannot interleave them: these tests are PostgreSQL's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

from tests.store.pg_support import PgSchema
from tether.runtime.ops import finish, suspend
from tether.store import RunRecord, Store, Tx, open_store

T = TypeVar("T")
DEADLINE = 60.0  # seconds; generous, CI machines are loaded


@pytest.fixture
def pg() -> Iterator[PgSchema]:
    schema = PgSchema()
    yield schema
    schema.drop()


class Gate:
    """Where a transaction stops, still open, until the test lets it go on."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()

    def stop(self) -> None:
        self.reached.set()
        assert self.go.wait(DEADLINE), "the test never let the transaction go on"

    def wait_reached(self) -> None:
        assert self.reached.wait(DEADLINE), "the transaction never reached its stop"


class StopAtRun:
    """A `Tx` that stops at its first touch of `run_id` (locking or reading its row): what the
    transaction did before that is written but not committed, and it has not yet seen the run."""

    def __init__(self, tx: Tx, run_id: str, gate: Gate) -> None:
        self._tx, self._run_id, self._gate = tx, run_id, gate
        self._stopped = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tx, name)
        if name not in ("lock_run", "get_run"):
            return attr

        def touch(run_id: str) -> Any:
            if run_id == self._run_id and not self._stopped:
                self._stopped = True
                self._gate.stop()
            return attr(run_id)
        return touch


class Transaction:
    """One store write in a thread of its own, on a store (connection pool) of its own; it
    records its session's backend pid, so the test can see whom it waits for, and its outcome."""

    def __init__(self, url: str, op: Callable[[Tx], Any]) -> None:
        self.store = open_store(url)
        self.pid = 0
        self.outcome: list[object] = []

        def with_pid(tx: Tx) -> Any:
            self.pid = tx.conn.info.backend_pid  # type: ignore[attr-defined]  # PostgreSQL's Tx
            return op(tx)

        def run() -> None:
            try:
                self.outcome.append(self.store.write(with_pid))
            except BaseException as exc:  # reported by the test, not lost in the thread
                self.outcome.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)

    def start(self) -> Transaction:
        self.thread.start()
        return self

    def join(self) -> object:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the transaction never ended"
        self.store.close()
        assert len(self.outcome) == 1
        return self.outcome[0]


def blocked_by_or_done(pg: PgSchema, waiter: Transaction, holder: Transaction) -> str:
    """Wait until `waiter` ended or waits for a lock `holder` holds; say which. With the row lock
    it waits; without it, it ends (and the parent's wake-up is lost)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if not waiter.thread.is_alive():
            return "done"
        if waiter.pid and pg.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND %s = ANY(pg_blocking_pids(pid))",
                (waiter.pid, holder.pid)):
            return "blocked"
        if time.monotonic() > deadline:
            pytest.fail("the second transaction neither ended nor waited for the first")
        time.sleep(0.02)


def running_parent_and_child(store: Store) -> None:
    """A parent run and its child, both running: leased to workers 'wp' and 'wc'."""
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="p", agent="m:parent", status="queued", input=None, root_id="p")))
    assert store.write(lambda tx: tx.claim("wp", 1, 300.0)) == ["p"]
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="c", agent="m:child", status="queued", input=None, parent_id="p", root_id="p",
        depth=1)))
    assert store.write(lambda tx: tx.claim("wc", 1, 300.0)) == ["c"]


child_finishes = finish("c", "wc", "succeeded", result=1)
parent_suspends = suspend("p", "wp", reason="waiting for child run c", wake_at=None,
                          children=["c"], signals=[])


def assert_parent_runnable(store: Store) -> None:
    parent = store.get_run("p")
    assert parent is not None and parent.status == "queued", (
        f"the parent was left {parent.status if parent else None!r} ({parent and parent.reason}) "
        "although its child succeeded: the wake-up was lost")
    assert store.write(lambda tx: tx.claim("w", 1, 30.0)) == ["p"]


def test_a_child_finishing_while_its_parent_suspends_wakes_the_parent(pg: PgSchema) -> None:
    """The child's `finish` stops just before it looks at the parent (the child's success is
    written, not committed); the parent's `suspend` runs meanwhile, sees the child still
    running, writes 'waiting' and stops before its commit; then the child's transaction goes on.
    Without the lock it read the parent as 'running' (the suspend not committed), woke nothing,
    and both committed: the parent waited for a finished child."""
    store = open_store(pg.url)
    try:
        running_parent_and_child(store)
        at_parent, before_commit = Gate(), Gate()

        def finish_stopping_at_the_parent(tx: Tx) -> None:
            child_finishes(cast(Tx, StopAtRun(tx, "p", at_parent)))

        def suspend_then_hold(tx: Tx) -> str:
            status = parent_suspends(tx)
            before_commit.stop()
            return status

        child = Transaction(pg.url, finish_stopping_at_the_parent).start()
        at_parent.wait_reached()
        parent = Transaction(pg.url, suspend_then_hold).start()
        try:
            before_commit.wait_reached()
            at_parent.go.set()
            seen = blocked_by_or_done(pg, child, parent)
        finally:
            at_parent.go.set()
            before_commit.go.set()
        assert parent.join() == "waiting"  # it saw its child running: the child committed later
        assert child.join() is None
        assert_parent_runnable(store)
        assert seen == "blocked", "the child's wake did not wait for the parent's suspend"
    finally:
        store.close()


def test_a_parent_suspending_while_its_child_finishes_sees_the_child_done(
        pg: PgSchema) -> None:
    """The child's `finish` runs whole (it finds the parent still running: nothing to wake) and
    stops before its commit; the parent's `suspend` runs meanwhile. Without the lock on the
    parent's row it read the child as running (the finish not committed) and wrote 'waiting'
    for a child whose wake-up had already gone by."""
    store = open_store(pg.url)
    try:
        running_parent_and_child(store)
        before_commit = Gate()

        def finish_then_hold(tx: Tx) -> None:
            child_finishes(tx)
            before_commit.stop()

        child = Transaction(pg.url, finish_then_hold).start()
        try:
            before_commit.wait_reached()
            parent = Transaction(pg.url, parent_suspends).start()
            seen = blocked_by_or_done(pg, parent, child)
        finally:
            before_commit.go.set()
        assert child.join() is None
        assert parent.join() == "queued", "the suspend did not see its child had succeeded"
        assert_parent_runnable(store)
        assert seen == "blocked", "the parent's suspend did not wait for the child's finish"
    finally:
        store.close()
