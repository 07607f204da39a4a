"""What every store backend must do, run on SQLite and on PostgreSQL (the `backend` fixture):
migrations, group commit and its isolation, artifacts, concurrent readers, claims and fencing
between workers that share one database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from tether.runtime import GroupCommitter
from tether.store import (
    LATEST_VERSION,
    LeaseLost,
    NewEvent,
    RunRecord,
    SchemaTooNew,
    Store,
    StoreCorrupt,
    dumps,
    open_store,
)
from tether.store._migrations import MIGRATIONS

Raw = Callable[..., list[tuple[object, ...]]]


def make_run(store: Store, run_id: str = "r1", tenant: str = "default",
             created_at: float = 0.0) -> None:
    store.write(lambda tx: tx.insert_run(RunRecord(
        id=run_id, agent="m:f", status="queued", input={"n": 1}, root_id=run_id, tenant=tenant,
        created_at=created_at)))


def tables(backend: str, raw: Raw) -> set[str]:
    if backend == "sqlite":
        rows = raw("SELECT name FROM sqlite_master WHERE type='table'")
    else:
        rows = raw("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows}


def test_fresh_database_is_migrated_to_latest(store: Store, backend: str, raw: Raw) -> None:
    assert store.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]
    assert {"runs", "events", "leases", "artifacts", "signals", "meta", "usage", "budget_spend",
            "api_keys", "audit", "span_exports"} <= tables(backend, raw)


def test_migrations_apply_in_order_from_an_older_version(
        store_url: str, use_migrations: Callable[[list[tuple[int, str]]], None]) -> None:
    open_store(store_url).close()
    use_migrations([*MIGRATIONS, (LATEST_VERSION + 1, "CREATE TABLE extra_probe (x INTEGER)")])
    upgraded = open_store(store_url)
    try:
        assert upgraded.schema_version() == LATEST_VERSION + 1  # type: ignore[attr-defined]
        assert upgraded.write(lambda tx: None) is None
    finally:
        upgraded.close()


def test_database_from_a_newer_tether_is_refused_untouched(store_url: str, raw: Raw) -> None:
    open_store(store_url).close()
    raw("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(SchemaTooNew, match=r"newer Tether \(schema version 99; this Tether "
                       rf"supports up to {LATEST_VERSION}\)"):
        open_store(store_url)
    assert raw("SELECT value FROM meta WHERE key='schema_version'") == [("99",)]


def test_v1_database_is_upgraded_with_its_journal_intact(
        store_url: str, raw: Raw, use_migrations: Callable[[list[tuple[int, str]]], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_migrations(MIGRATIONS[:1])
    old = open_store(store_url)
    assert old.schema_version() == 1  # type: ignore[attr-defined]
    raw("INSERT INTO runs (id, agent, status, root_id, created_at, updated_at) "
        "VALUES ('r1', 'm:f', 'waiting', 'r1', 0, 0)")
    old.write(lambda tx: tx.append_events("r1", [
        NewEvent(i, "log", str(i), None, dumps({"message": "x" * 1000}), float(i))
        for i in range(1, 4)]))
    old.close()
    monkeypatch.undo()
    new = open_store(store_url)
    try:
        assert new.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]
        events = new.load_events("r1")
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[0].data == {"message": "x" * 1000} and events[2].ts == 3.0
        run = new.get_run("r1")
        assert run is not None and run.flags == []
        # the rebuilt events table still numbers rows itself and refuses a duplicate seq
        new.write(lambda tx: tx.append_events("r1", [NewEvent(4, "log", "4", None, None, 4.0)]))
        with pytest.raises(Exception, match="conflicting write"):
            new.write(lambda tx: tx.append_events("r1", [NewEvent(4, "log", "4", None, None, 4.0)]))
        assert new.integrity_check() == []
    finally:
        new.close()


def test_write_batch_isolates_a_failing_operation(store: Store) -> None:
    make_run(store)
    ev = NewEvent(1, "log", "1", None, dumps("a"), time.time())

    def bad(tx):  # type: ignore[no-untyped-def]
        tx.append_events("r1", [NewEvent(2, "log", "2", None, None, time.time())])
        raise ValueError("refused")

    results = store.write_batch([
        lambda tx: tx.append_events("r1", [ev]),
        bad,
        lambda tx: tx.append_events("r1", [ev]),  # duplicate seq: a conflicting write
        lambda tx: tx.append_events("r1", [NewEvent(3, "log", "3", None, None, time.time())]),
    ])
    assert results is not None
    assert [ok for ok, _ in results] == [True, False, False, True]
    assert isinstance(results[1][1], ValueError)
    assert "conflicting write" in str(results[2][1])
    assert [e.seq for e in store.load_events("r1")] == [1, 3]  # bad op left nothing behind


def test_a_lease_granted_by_an_operation_that_failed_is_not_held(store: Store) -> None:
    """A lease granted in a transaction is held by it (a later check in the same batch need not
    read it back), unless the operation that granted it failed and was undone."""
    make_run(store)
    make_run(store, "r2")

    def grant_then_fail(tx):  # type: ignore[no-untyped-def]
        tx.grant_lease("r1", "w1", 30.0, 1)
        raise ValueError("refused")

    def grant_and_check(tx):  # type: ignore[no-untyped-def]
        tx.grant_lease("r2", "w1", 30.0, 1)
        tx.check_lease("r2", "w1", 1)
        tx.check_lease("r2", "w1")

    results = store.write_batch([grant_then_fail, lambda tx: tx.check_lease("r1", "w1", 1),
                                 grant_and_check, lambda tx: tx.check_lease("r2", "w1", 2)])
    assert results is not None
    assert [ok for ok, _ in results] == [False, False, True, False]
    assert isinstance(results[1][1], LeaseLost)  # the grant was undone with its operation
    assert isinstance(results[3][1], LeaseLost)  # another epoch than the one granted
    assert store.write(lambda tx: tx.lease_holder("r1")) is None
    assert store.write(lambda tx: tx.lease_holder("r2")) is not None


def test_a_failing_lone_operation_leaves_nothing_behind(store: Store) -> None:
    # one op per batch runs without a savepoint: its failure rolls back the whole transaction
    make_run(store)

    def bad(tx):  # type: ignore[no-untyped-def]
        tx.append_events("r1", [NewEvent(1, "log", "1", None, None, time.time())])
        raise ValueError("refused")

    ((ok, err),) = store.write_batch([bad]) or []
    assert not ok and isinstance(err, ValueError)
    ev = NewEvent(1, "log", "1", None, None, time.time())
    ((ok, err),) = store.write_batch([lambda tx: tx.append_events("r1", [ev, ev])]) or []
    assert not ok and "conflicting write" in str(err)
    assert store.load_events("r1") == []
    assert store.write_batch([lambda tx: tx.append_events("r1", [ev])]) == [(True, None)]
    assert [e.seq for e in store.load_events("r1")] == [1]


async def test_group_commit_puts_many_writers_in_few_transactions(store: Store) -> None:
    for i in range(200):
        make_run(store, f"r{i}")
    committer = GroupCommitter(store)
    try:
        async def writer(i: int) -> None:
            for seq in range(1, 6):
                ev = NewEvent(seq, "log", str(seq), None, None, time.time())
                await committer.run(lambda tx, ev=ev: tx.append_events(f"r{i}", [ev]))

        await asyncio.gather(*(writer(i) for i in range(200)))
    finally:
        committer.close()
    assert committer.ops == 1000
    assert committer.batches < 200, f"{committer.batches} transactions for 1000 writes"
    assert sum(store.count_events(f"r{i}") for i in range(200)) == 1000
    assert store.integrity_check() == []


def test_artifacts_are_content_addressed_and_verified(store: Store, raw: Raw) -> None:
    digest = store.put_artifact(b"col\n1\n")
    assert digest == store.put_artifact(b"col\n1\n")
    assert store.get_artifact(digest) == b"col\n1\n"
    with pytest.raises(KeyError, match="no artifact"):
        store.get_artifact("0" * 64)
    raw("UPDATE artifacts SET data=? WHERE digest=?", (b"tampered", digest))
    with pytest.raises(StoreCorrupt, match="does not match its digest"):
        store.get_artifact(digest)


def test_reads_from_many_threads(store: Store) -> None:
    make_run(store)
    seen: list[object] = []

    def read() -> None:
        seen.append(store.get_run("r1"))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(r is not None for r in seen)


def test_concurrent_workers_claim_disjoint_runs(store: Store, store_url: str) -> None:
    for i in range(60):
        make_run(store, f"r{i:02d}", created_at=float(i))
    stores = [open_store(store_url) for _ in range(4)]
    claimed: dict[str, list[str]] = {}
    start = threading.Barrier(len(stores))

    def worker(n: int) -> None:
        start.wait()
        got: list[str] = []
        while True:
            batch = stores[n].write(lambda tx: tx.claim(f"w{n}", 3, 30.0))
            if not batch:
                break
            got.extend(batch)
        claimed[f"w{n}"] = got

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            s.close()
    every = [run_id for got in claimed.values() for run_id in got]
    assert sorted(every) == [f"r{i:02d}" for i in range(60)]  # each run once, none lost
    leases = store.leases(every)
    assert all(leases[r][0] == w for w, got in claimed.items() for r in got)


def test_claim_takes_runs_oldest_first_and_respects_exclude(store: Store) -> None:
    for i in (3, 1, 2):
        make_run(store, f"r{i}", created_at=float(i))
    assert store.write(lambda tx: tx.claim("w", 2, 30.0, exclude=["r1"])) == ["r2", "r3"]
    assert store.write(lambda tx: tx.claim("w", 5, 30.0)) == ["r1"]


def test_a_reclaimed_run_fences_out_its_old_owner(store: Store, store_url: str) -> None:
    make_run(store)
    assert store.write(lambda tx: tx.claim("old", 1, 0.05)) == ["r1"]
    time.sleep(0.1)  # the old worker stalls past its lease
    other = open_store(store_url)
    try:
        assert other.write(lambda tx: tx.claim("new", 1, 30.0)) == ["r1"]
    finally:
        other.close()
    ev = NewEvent(1, "log", "1", None, None, time.time())
    with pytest.raises(LeaseLost, match="held by worker 'new'"):
        store.write(lambda tx: (tx.check_lease("r1", "old", 1), tx.append_events("r1", [ev])))
    # the same owner claiming again gets a new epoch: its older incarnation is fenced too
    with pytest.raises(LeaseLost):
        store.write(lambda tx: tx.check_lease("r1", "new", 1))
    store.write(lambda tx: (tx.check_lease("r1", "new", 2), tx.append_events("r1", [ev])))
    assert [e.seq for e in store.load_events("r1")] == [1]
    run = store.get_run("r1")
    assert run is not None and run.attempts == 2


def test_tenant_limit_holds_across_concurrent_workers(store: Store, store_url: str) -> None:
    for i in range(20):
        make_run(store, f"a{i:02d}", tenant="acme", created_at=float(i))
    stores = [open_store(store_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    got: list[str] = []

    def worker(n: int) -> None:
        start.wait()
        for _ in range(3):
            got.extend(stores[n].write(
                lambda tx: tx.claim(f"w{n}", 2, 30.0, tenant_limits={"acme": 3})))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            s.close()
    assert len(got) == 3 and len(set(got)) == 3
    assert len(store.list_runs(status="running", tenant="acme")) == 3


def test_signals_are_consumed_once(store: Store) -> None:
    make_run(store)
    store.write(lambda tx: tx.insert_signal("r1", "go", dumps({"n": 1})))
    store.write(lambda tx: tx.insert_signal("r1", "go", dumps({"n": 2})))
    assert [s.payload for s in store.pending_signals("r1")] == [{"n": 1}, {"n": 2}]
    first = store.write(lambda tx: tx.consume_signal("r1", "go", "w"))
    assert first is not None and first.payload == {"n": 1}
    assert store.write(lambda tx: tx.pending_signal_names("r1")) == {"go"}
    assert store.write(lambda tx: tx.consume_signal("r1", "go", "w")) is not None
    assert store.write(lambda tx: tx.consume_signal("r1", "go", "w")) is None


def test_signals_read_inside_a_transaction_and_found_by_name_prefix(store: Store) -> None:
    """What an approval decision checks and sends in one transaction (`tether.guards.inbox`),
    and how the inbox finds a run decided on but not run again yet."""
    make_run(store)
    make_run(store, "r2")
    ev = NewEvent(1, "log", "1", None, dumps({"m": 1}), time.time())
    store.write(lambda tx: tx.append_events("r1", [ev]))
    store.write(lambda tx: tx.insert_signal("r1", "approval:r1.a1", dumps({"v": 1})))
    store.write(lambda tx: tx.insert_signal("r2", "go", None))
    assert store.write(lambda tx: [e.data for e in tx.load_events("r1")]) == [{"m": 1}]
    assert store.write(lambda tx: [s.payload for s in tx.pending_signals("r1")]) == [{"v": 1}]
    assert store.runs_with_pending_signals("approval:") == ["r1"]
    assert store.runs_with_pending_signals("approval:r1.a2") == []
    store.write(lambda tx: tx.consume_signal("r1", "approval:r1.a1", "w"))
    assert store.runs_with_pending_signals("approval:") == []
    assert store.write(lambda tx: tx.pending_signals("r1")) == []


def test_usage_budget_and_span_marks_accumulate(store: Store) -> None:
    store.write(lambda tx: tx.add_usage("t", "2026-12-06", {"tokens": 10, "usd": 0.5}))
    store.write(lambda tx: tx.add_usage("t", "2026-12-06", {"tokens": 5}))
    assert store.get_usage("t", "2026-12-06") == {"tokens": 15.0, "usd": 0.5}
    store.write(lambda tx: tx.add_budget_spend(["a", "b"], {"usd": 1.25}))
    store.write(lambda tx: tx.add_budget_spend(["a"], {"usd": -0.25}))
    assert store.get_budget_spend("a") == {"usd": 1.0} and store.get_budget_spend("b") == {
        "usd": 1.25}
    assert store.write(lambda tx: tx.hold_budget("r1", "k")) is True
    assert store.write(lambda tx: tx.hold_budget("r1", "k")) is False
    assert store.write(lambda tx: tx.release_budget_hold("r1", "k")) is True
    assert store.write(lambda tx: tx.release_budget_hold("r1", "k")) is False
    store.write(lambda tx: tx.mark_spans_exported({"r1": 5}))
    store.write(lambda tx: tx.mark_spans_exported({"r1": 3}))  # a mark only moves forward
    assert store.spans_exported(["r1", "r2"]) == {"r1": 5}


def test_run_ids_with_prefix_treats_wildcards_as_text(store: Store) -> None:
    for run_id in ("ab_1", "abc", "ab%", "ab_1.k", "b"):
        make_run(store, run_id)
    assert store.run_ids_with_prefix("ab_") == ["ab_1", "ab_1.k"]
    assert store.run_ids_with_prefix("ab_", outermost=True) == ["ab_1"]
    assert store.run_ids_with_prefix("ab", limit=2) == ["ab%", "ab_1"]


def test_a_conflict_in_the_last_operation_fails_only_that_operation(store: Store) -> None:
    # PostgreSQL pipelines a batch: a conflict may only surface at commit, after every op ran
    make_run(store)
    make_run(store, "r2")
    ev = NewEvent(1, "log", "1", None, None, time.time())
    store.write(lambda tx: tx.append_events("r2", [ev]))
    results = store.write_batch([
        lambda tx: tx.append_events("r1", [ev]),
        lambda tx: tx.insert_signal("r1", "go", None),
        lambda tx: tx.append_events("r2", [ev]),  # seq 1 of r2 exists
    ])
    assert results is not None
    assert [ok for ok, _ in results] == [True, True, False]
    assert "conflicting write" in str(results[2][1])
    assert [e.seq for e in store.load_events("r1")] == [1]
    assert [s.name for s in store.pending_signals("r1")] == ["go"]  # counted once


def test_a_listing_leaves_out_big_values_and_says_so(store: Store) -> None:
    from tether.store._rows import LISTED_VALUE_MAX

    big = "x" * (LISTED_VALUE_MAX + 10)
    store.write(lambda tx: tx.insert_run(RunRecord(
        id="big", agent="m:f", status="queued", input={"doc": big}, root_id="big")))
    store.write(lambda tx: tx.update_run("big", status="succeeded", result="small"))
    make_run(store, "small", created_at=0.0)
    listed = {r.id: r for r in store.list_runs()}
    assert (listed["big"].input, listed["big"].result, listed["big"].omitted) == (
        None, "small", ("input",))
    assert listed["small"].omitted == () and listed["small"].input == {"n": 1}
    whole = store.get_run("big")
    assert whole is not None and whole.input == {"doc": big} and whole.omitted == ()


def test_runs_are_counted_by_status_per_tenant_or_all(store: Store) -> None:
    assert store.count_runs() == {}
    for i in range(3):
        make_run(store, f"a{i}", tenant="acme")
    make_run(store, "g0", tenant="globex")
    store.write(lambda tx: tx.update_run("a0", status="succeeded", result=1))
    assert store.count_runs() == {"queued": 3, "succeeded": 1}
    assert store.count_runs(tenant="acme") == {"queued": 2, "succeeded": 1}
    assert store.count_runs(tenant="nobody") == {}


def test_runs_are_listed_by_agent_in_the_database(store: Store) -> None:
    for i, agent in enumerate(["m:a", "m:b", "m:a", "/abs/shop.py:a"]):
        store.write(lambda tx, i=i, agent=agent: tx.insert_run(RunRecord(
            id=f"r{i}", agent=agent, status="queued", input=None, tenant="acme", root_id=f"r{i}",
            created_at=float(i))))
    assert sorted(r.id for r in store.list_runs(agent="m:a", tenant="acme")) == ["r0", "r2"]
    [one] = store.list_runs(agent="m:a", limit=1)  # the limit counts the agent's runs only
    assert one.agent == "m:a"
    assert [r.id for r in store.list_runs(agent="/abs/shop.py:a")] == ["r3"]
    assert store.list_runs(agent="m:a", tenant="other") == []


def test_flagged_runs_are_listed_by_the_database(store: Store) -> None:
    for i, flags in enumerate([[{"flag": "honeypot"}], [], [], []]):
        store.write(lambda tx, i=i, flags=flags: tx.insert_run(RunRecord(
            id=f"r{i}", agent="m:f", status="succeeded", input=None, root_id=f"r{i}",
            flags=flags)))
    [run] = store.list_runs(flagged=True, limit=1)
    assert run.id == "r0" and run.flags == [{"flag": "honeypot"}]
    assert len(store.list_runs(limit=10)) == 4
