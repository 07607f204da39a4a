"""Worker queues in the store's claim, on SQLite and on PostgreSQL: a claim limited to some
tenants or to the trees of some agents takes only those runs, applies the filter before its
limit, and a child run follows its root's agent (its own tenant). Runs from before queues
(schema 6) get their root's agent in migration 7."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tether.store import RunRecord, Store, open_store
from tether.store._migrations import MIGRATIONS


def add(store: Store, run_id: str, *, tenant: str = "default", agent: str = "m:root",
        parent: str | None = None, created_at: float = 0.0) -> None:
    root = parent.split(".")[0] if parent else run_id
    store.write(lambda tx: tx.insert_run(RunRecord(
        id=run_id, agent=agent, status="queued", input=None, tenant=tenant, parent_id=parent,
        root_id=root, depth=run_id.count("."), created_at=created_at)))


def claim(store: Store, limit: int = 10, **queue: object) -> list[str]:
    return store.write(lambda tx: tx.claim("w", limit, 30.0, **queue))  # type: ignore[arg-type]


def test_a_tenant_queue_claims_only_its_tenants_runs(store: Store) -> None:
    for i in range(6):
        add(store, f"b{i}", tenant="globex", created_at=float(i))  # older: first in line
    add(store, "a1", tenant="acme", created_at=10.0)
    add(store, "c1", tenant="initech", created_at=11.0)
    # the other tenant's six older runs do not fill the limit of 1
    assert claim(store, 1, tenants=["acme"]) == ["a1"]
    assert claim(store, tenants=["acme"]) == []
    assert claim(store, tenants=["acme", "initech"]) == ["c1"]
    assert claim(store, tenants=[]) == []  # an empty queue serves nothing
    assert sorted(claim(store)) == [f"b{i}" for i in range(6)]


def test_an_agent_queue_claims_the_trees_its_agents_start(store: Store) -> None:
    add(store, "r1", agent="m:research", created_at=1.0)
    add(store, "r1.1", agent="m:summarise", parent="r1", created_at=2.0)
    add(store, "r1.1.1", agent="m:fetch", parent="r1.1", created_at=3.0)
    add(store, "s1", agent="m:summarise", created_at=4.0)
    # a summarise worker takes the summarise root, not research's summarise child
    assert claim(store, agents=["m:summarise"]) == ["s1"]
    assert claim(store, agents=["m:fetch"]) == []
    assert claim(store, agents=["m:research"]) == ["r1", "r1.1", "r1.1.1"]


def test_children_keep_their_own_tenant_in_a_tenant_queue(store: Store) -> None:
    add(store, "a1", tenant="acme", agent="m:research", created_at=1.0)
    add(store, "a1.1", tenant="acme", agent="m:summarise", parent="a1", created_at=2.0)
    add(store, "a1.2", tenant="globex", agent="m:summarise", parent="a1", created_at=3.0)
    assert claim(store, tenants=["globex"], agents=["m:summarise"]) == []
    assert claim(store, tenants=["globex"], agents=["m:research"]) == ["a1.2"]
    assert claim(store, tenants=["acme"]) == ["a1", "a1.1"]


def test_queues_also_select_abandoned_runs(store: Store) -> None:
    add(store, "a1", tenant="acme", created_at=1.0)
    add(store, "b1", tenant="globex", created_at=2.0)
    assert sorted(store.write(lambda tx: tx.claim("dead", 10, -1.0))) == ["a1", "b1"]  # expired
    assert claim(store, tenants=["globex"]) == ["b1"]
    assert claim(store, agents=["m:other"]) == []
    assert claim(store, agents=["m:root"], tenants=["acme"]) == ["a1"]


def test_tenant_queues_with_a_tenant_limit_across_concurrent_workers(
        store: Store, store_url: str) -> None:
    """Two pools, one per tenant, four workers each, racing; acme's limit of 3 holds across
    its pool and globex's pool never takes acme's runs (nor the reverse)."""
    for i in range(20):
        add(store, f"a{i:02d}", tenant="acme", created_at=float(2 * i))
        add(store, f"g{i:02d}", tenant="globex", created_at=float(2 * i + 1))
    stores = [open_store(store_url) for _ in range(8)]
    start = threading.Barrier(len(stores))
    got: dict[str, list[str]] = {"acme": [], "globex": []}

    def worker(n: int) -> None:
        tenant = "acme" if n % 2 else "globex"
        start.wait()
        for _ in range(3 if tenant == "acme" else 20):
            got[tenant].extend(stores[n].write(lambda tx: tx.claim(
                f"w{n}", 2, 30.0, tenant_limits={"acme": 3}, tenants=[tenant])))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            s.close()
    assert len(got["acme"]) == 3 and all(r.startswith("a") for r in got["acme"])
    globex = got["globex"] + claim(store, 20, tenants=["globex"])  # any left by lost races
    assert sorted(globex) == [f"g{i:02d}" for i in range(20)]  # each once, only globex's
    assert len(store.list_runs(status="running", tenant="acme")) == 3


def test_migration_7_gives_existing_runs_their_roots_agent(
        store_url: str, raw: Callable[..., list[tuple[object, ...]]],
        use_migrations: Callable[[list[tuple[int, str]]], None]) -> None:
    """Runs written before worker queues (schema 6) are served by their root's queue after the
    upgrade, as new ones are."""
    use_migrations([m for m in MIGRATIONS if m[0] <= 6])
    open_store(store_url).close()
    for run_id, agent, parent, root, created in [("r1", "m:research", None, "r1", 1.0),
                                                 ("r1.1", "m:summarise", "r1", "r1", 2.0),
                                                 ("s1", "m:summarise", None, "s1", 3.0)]:
        raw("INSERT INTO runs (id, agent, status, parent_id, root_id, created_at, updated_at) "
            "VALUES (?, ?, 'queued', ?, ?, ?, ?)", (run_id, agent, parent, root, created, created))
    use_migrations(MIGRATIONS)
    store = open_store(store_url)
    try:
        assert store.schema_version() == MIGRATIONS[-1][0] >= 7
        assert sorted(raw("SELECT id, root_agent FROM runs")) == [
            ("r1", "m:research"), ("r1.1", "m:research"), ("s1", "m:summarise")]
        assert claim(store, agents=["m:summarise"]) == ["s1"]
        assert claim(store, agents=["m:research"]) == ["r1", "r1.1"]
    finally:
        store.close()


def test_claims_take_due_timers_and_abandoned_runs_oldest_first_with_queued_ones(
        store: Store) -> None:
    """The three ways a run becomes claimable are read apart and merged by age."""
    add(store, "q3", created_at=3.0)
    add(store, "w1", created_at=1.0)
    add(store, "w5", created_at=5.0)
    add(store, "a2", created_at=2.0)
    add(store, "a4", created_at=4.0)
    assert sorted(store.write(lambda tx: tx.claim("dead", 10, -1.0))) == [
        "a2", "a4", "q3", "w1", "w5"]  # all taken, leases already expired
    store.write(lambda tx: tx.update_run("w1", status="waiting", wake_at=0.0))
    store.write(lambda tx: tx.update_run("w5", status="waiting", wake_at=0.0))
    store.write(lambda tx: tx.update_run("q3", status="queued"))
    store.write(lambda tx: tx.update_run("w5", wake_at=tx.now() + 3600))  # not due yet
    assert claim(store, 2) == ["w1", "a2"]
    assert claim(store, 10) == ["q3", "a4"]
