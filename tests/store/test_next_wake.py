"""`Tx.next_wake`, on SQLite and on PostgreSQL: when the next run of a worker's queue becomes
claimable with no commit to announce it (a timer falling due, a dead worker's lease expiring),
so a worker woken by LISTEN/NOTIFY can sleep until then instead of polling."""

from __future__ import annotations

from tether.store import RunRecord, Store

NOW = 1_000_000.0


def add(store: Store, run_id: str, *, status: str, tenant: str = "default",
        agent: str = "m:root", wake_at: float | None = None) -> None:
    store.write(lambda tx: tx.insert_run(RunRecord(
        id=run_id, agent=agent, status=status, input=None, tenant=tenant, wake_at=wake_at,
        root_id=run_id, created_at=1.0)))


def lease(store: Store, run_id: str, owner: str, expires_at: float) -> None:
    """A lease as a claim leaves it, with a chosen expiry (claims take the clock's)."""
    def op(tx: object) -> None:
        assert tx.claim(owner, 1, expires_at - tx.now()) == [run_id]  # type: ignore[attr-defined]
    store.write(op)


def next_wake(store: Store, owner: str | None = "me", **queue: object) -> float | None:
    return store.write(lambda tx: tx.next_wake(NOW, owner=owner, **queue))  # type: ignore[arg-type]


def test_nothing_pending_means_no_wake(store: Store) -> None:
    assert next_wake(store) is None
    add(store, "done", status="succeeded")
    add(store, "signal-only", status="waiting")  # waits for a signal: its sender's commit wakes
    assert next_wake(store) is None


def test_the_earliest_timer_of_the_queue(store: Store) -> None:
    add(store, "later", status="waiting", wake_at=NOW + 50)
    add(store, "sooner", status="waiting", wake_at=NOW + 20, tenant="globex")
    add(store, "agent", status="waiting", wake_at=NOW + 30, agent="m:other")
    assert next_wake(store) == NOW + 20
    assert next_wake(store, tenants=["default"]) == NOW + 30
    assert next_wake(store, tenants=["default"], agents=["m:root"]) == NOW + 50
    assert next_wake(store, tenants=[]) is None  # an empty queue serves nothing


def test_another_owners_lease_expiry_but_not_the_callers(store: Store) -> None:
    add(store, "theirs", status="queued")
    add(store, "mine", status="queued")
    far = NOW + 10_000_000.0  # leases run on the store's clock; far beyond it
    lease(store, "theirs", "dead-worker", far + 40)
    lease(store, "mine", "me", far + 5)
    # its own leases are the caller's heartbeat's business, not a reason to wake
    assert next_wake(store) == far + 40
    assert next_wake(store, owner="dead-worker") == far + 5
    add(store, "timer", status="waiting", wake_at=far + 10)
    assert next_wake(store) == far + 10


def test_claimable_now_when_a_runnable_run_was_left(store: Store) -> None:
    """A queued run the caller did not take (a tenant limit, another worker's lock): `now`,
    so the worker keeps its short poll rather than sleeping until a timer."""
    add(store, "timer", status="waiting", wake_at=NOW + 60)
    add(store, "queued", status="queued", tenant="globex")
    assert next_wake(store) == NOW
    assert next_wake(store, tenants=["default"]) == NOW + 60
    # a running run with no lease at all (its worker's lease row is gone): claimable now
    add(store, "orphan", status="running")
    assert next_wake(store, tenants=["default"]) == NOW
