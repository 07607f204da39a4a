"""Deleting finished runs (`Tether.delete`, `Tether.prune`): a tree goes whole, with everything
kept for it, in one transaction, and only once nothing in it can change; shared records (the
tenant's usage, the audit log, artifacts) stay. On both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.store.pg_support import PgSchema, raw_connection, raw_sql
from tether import Context, RunNotDeletable, RunNotFound, Tether
from tether.runtime import _retention

# every table that keeps something for a run, and the column naming the run
PER_RUN = (("runs", "id"), ("events", "run_id"), ("signals", "run_id"), ("leases", "run_id"),
           ("budget_holds", "run_id"), ("budget_spend", "scope"), ("span_exports", "run_id"))


async def family(ctx: Context, inp: dict[str, Any]) -> list[Any]:
    """A parent, `inp["kids"]` children, a grandchild under the first; waits for "go" first
    when asked (a signal journaled and stored)."""
    if inp.get("wait"):
        await ctx.wait_for("go")
    kids = [await ctx.spawn(kid, {"i": i, "deeper": i == 0}) for i in range(inp["kids"])]
    return [await k for k in kids]


async def kid(ctx: Context, inp: dict[str, Any]) -> Any:
    if inp["deeper"]:
        grandchild = await ctx.spawn(kid, {"i": 99, "deeper": False})
        return [inp["i"], await grandchild]
    if inp.get("block"):
        return await ctx.wait_for("never")
    return await ctx.step("twice", lambda: inp["i"] * 2)


async def stuck_kid(ctx: Context, inp: Any) -> Any:
    child = await ctx.spawn(kid, {"i": 1, "deeper": False, "block": True})
    return await child


def _rows(db: str, run_ids: list[str]) -> dict[str, int]:
    conn: Any = raw_connection(db)
    try:
        counts = {}
        for table, column in PER_RUN:
            marks = ",".join("?" * len(run_ids))
            counts[table] = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})",
                tuple(run_ids)).fetchone()[0]
        return counts
    finally:
        conn.close()


def _tree(t: Tether, root: str) -> list[str]:
    return [root] + [r.id for r in t.store.descendants(root)]


async def _finished_family(t: Tether, kids: int = 2, tenant: str = "default") -> str:
    rec = await t.run(family, {"kids": kids, "wait": True}, tenant=tenant)
    t.signal(rec.id, "go", {"ok": True})
    done = await t.drive(rec.id)
    assert done.status == "succeeded", done.error
    # marks a worker's budget and trace export leave behind, on every run of the tree
    ids = _tree(t, rec.id)
    t.store.write(lambda tx: [tx.add_budget_spend([i], {"tokens": 5.0}) for i in ids]
                  and tx.mark_spans_exported(dict.fromkeys(ids, 3)))
    return rec.id


async def test_delete_removes_a_finished_tree_and_all_kept_for_it(db_path: str) -> None:
    t = Tether(db_path)
    try:
        root = await _finished_family(t)
        other = await _finished_family(t)
        ids, others = _tree(t, root), _tree(t, other)
        assert len(ids) == 4  # the parent, two children, a grandchild
        before = _rows(db_path, ids)
        assert all(before[table] for table in ("runs", "events", "signals", "budget_spend",
                                               "span_exports")), before
        digest = t.store.put_artifact(b"shared by content")
        today = dt.datetime.fromtimestamp(t.store.now(), dt.UTC).strftime("%Y-%m-%d")
        t.store.write(lambda tx: tx.add_usage("default", today, {"widgets": 2.0}))

        deleted = t.delete(root)

        assert sorted(deleted.runs) == sorted(ids) and deleted.roots == [root]
        assert deleted.events == before["events"] > 0
        assert _rows(db_path, ids) == dict.fromkeys(before, 0)
        assert _rows(db_path, others)["events"] > 0 and t.get(other).status == "succeeded"
        with pytest.raises(RunNotFound):
            t.get(root)
        assert t.store.get_artifact(digest) == b"shared by content"  # artifacts stay
        assert t.store.get_usage("default", today) == {"widgets": 2.0}  # the tenant's stays
    finally:
        t.close()


async def test_delete_refuses_a_child_a_live_tree_and_an_unknown_run(db_path: str) -> None:
    t = Tether(db_path)
    try:
        root = await _finished_family(t)
        child = t.store.descendants(root)[0].id
        with pytest.raises(RunNotDeletable, match=f"child of run '{root}'.*from its root"):
            t.delete(child)
        stuck = await t.run(stuck_kid, None)
        assert stuck.status == "waiting"
        with pytest.raises(RunNotDeletable,
                           match=r"2 run\(s\) of its tree have not finished .* is waiting"):
            t.delete(stuck.id)  # its child waits: the parent waits for it too
        with pytest.raises(RunNotFound):
            t.delete("r-no-such-run")
        assert _rows(db_path, _tree(t, root))["events"] > 0  # nothing was deleted
        assert t.get(stuck.id).status == "waiting"
    finally:
        t.close()


async def test_prune_deletes_trees_that_ended_before_the_cutoff(db_path: str) -> None:
    t = Tether(db_path)
    try:
        old = [await _finished_family(t, kids=1) for _ in range(5)]
        old_other_tenant = await _finished_family(t, kids=1, tenant="acme")
        failed = await t.run(kid, {"i": 1, "deeper": False})
        raw_sql(t.store, "UPDATE runs SET status='failed', error='planted' WHERE id=?",
                (failed.id,))
        stuck = await t.run(stuck_kid, None)
        cutoff = t.store.now()
        recent = await _finished_family(t, kids=1)
        # the old ones ended a month ago, by the store's clock (the stuck one started then)
        month = 30 * 86400
        for run_id in [*old, old_other_tenant, failed.id, stuck.id]:
            raw_sql(t.store, "UPDATE runs SET updated_at = updated_at - ? WHERE id=?",
                    (month, run_id))
        before = {r: _rows(db_path, _tree(t, r)) for r in [*old, old_other_tenant, recent]}

        only_failed = t.prune(finished_before=cutoff, statuses=["failed"])
        assert only_failed.roots == [failed.id] and only_failed.runs == [failed.id]

        dry = t.prune(finished_before=cutoff, tenant="default", dry_run=True)
        assert sorted(dry.roots) == sorted(old) and len(dry.runs) == 5 * 3
        assert dry.events == sum(before[r]["events"] for r in old)
        assert _rows(db_path, _tree(t, old[0])) == before[old[0]]  # a dry run deletes nothing

        real = t.prune(finished_before=cutoff, tenant="default")
        assert (sorted(real.roots), real.events) == (sorted(dry.roots), dry.events)
        assert real.kept == {}  # the stuck tree is not finished: never a candidate
        for r in old:
            with pytest.raises(RunNotFound):
                t.get(r)
        for r in (old_other_tenant, recent):
            assert _rows(db_path, _tree(t, r)) == before[r]
        assert t.get(stuck.id).status == "waiting"
        assert t.prune(finished_before=cutoff, tenant="default").roots == []
        with pytest.raises(ValueError, match="only finished runs are pruned"):
            t.prune(finished_before=cutoff, statuses=["waiting"])
        with pytest.raises(ValueError, match="statuses is empty"):
            t.prune(finished_before=cutoff, statuses=[])
    finally:
        t.close()


async def test_prune_pages_through_many_trees_and_keeps_trees_not_finished(
        db_path: str) -> None:
    t = Tether(db_path)
    try:
        roots = [await _finished_family(t, kids=1) for _ in range(12)]
        # a root that ended while a child of it still runs (planted: its child made live again)
        odd = roots[3]
        raw_sql(t.store, "UPDATE runs SET status='running' WHERE parent_id=?", (odd,))
        deleted = _retention.prune(t.store, finished_before=t.store.now() + 1, batch=5)
        assert sorted(deleted.roots) == sorted(r for r in roots if r != odd)
        assert list(deleted.kept) == [odd] and "have not finished" in deleted.kept[odd]
        assert t.get(odd).status == "succeeded"
        assert len(deleted.runs) == 11 * 3
    finally:
        t.close()


async def fails(ctx: Context, inp: Any) -> Any:
    return await ctx.step("boom", _boom)


def _boom() -> None:
    raise RuntimeError("planted failure")


async def test_a_retry_racing_a_deletion_leaves_no_journal_without_its_run() -> None:
    """On PostgreSQL (SQLite runs one writer at a time: the two cannot overlap) a retry read
    the failed run, the deletion (holding the tree's rows) removed it, and the retry's events
    were written for a run that was gone."""
    import threading

    schema = PgSchema()
    db_path = schema.url
    t = Tether(db_path)
    try:
        rec = await t.run(fails, None)
        assert rec.status == "failed"
        deleter: Any = raw_connection(db_path)  # another process, deleting it: rows locked
        deleter._conn.autocommit = False
        deleter.execute("SELECT id FROM runs WHERE id=? FOR UPDATE", (rec.id,))
        outcome: list[BaseException | None] = []

        def retry() -> None:
            try:
                t.retry(rec.id)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        racing = threading.Thread(target=retry)
        racing.start()
        racing.join(0.5)
        assert racing.is_alive()  # waits for the deleter's lock
        deleter.execute("DELETE FROM events WHERE run_id=?", (rec.id,))
        deleter.execute("DELETE FROM runs WHERE id=?", (rec.id,))
        deleter._conn.commit()
        deleter.close()
        racing.join(30)
        assert isinstance(outcome[0], RunNotFound), outcome
        assert _rows(db_path, [rec.id]) == dict.fromkeys(_rows(db_path, [rec.id]), 0)
    finally:
        t.close()
        schema.drop()


async def keeps(ctx: Context, inp: dict[str, Any]) -> Any:
    """Journals an artifact's digest (as a sandbox's file manifest does), then maybe waits."""
    kept = await ctx.step("keep", lambda: {"report.csv": inp["digest"]})
    if inp.get("wait"):
        await ctx.wait_for("go")
    return kept


async def test_prune_sweeps_the_artifacts_nothing_mentions_any_more(db_path: str) -> None:
    t = Tether(db_path)
    try:
        store = t.store
        live_one, pruned_one, orphan, fresh, put_again = (
            store.put_artifact(f"artifact {i}".encode()) for i in range(5))
        live = await t.run(keeps, {"digest": live_one, "wait": True})
        assert live.status == "waiting"
        old = await t.run(keeps, {"digest": pruned_one})
        assert old.status == "succeeded"
        two_hours = 2 * 3600
        for digest in (live_one, pruned_one, orphan, put_again):
            raw_sql(store, "UPDATE artifacts SET created_at = created_at - ? WHERE digest=?",
                    (two_hours, digest))
        assert store.put_artifact(b"artifact 4") == put_again  # put again: its time renewed
        assert store.mentioned_artifacts({live_one, pruned_one, orphan}) == {live_one,
                                                                            pruned_one}
        dry = t.prune(finished_before=store.now() + 1, dry_run=True)
        assert dry.artifacts == 1  # the orphan; the pruned run's is still mentioned

        deleted = t.prune(finished_before=store.now() + 1)

        assert deleted.roots == [old.id] and deleted.artifacts == 2
        for gone in (pruned_one, orphan):
            assert not store.has_artifact(gone)
        for kept in (live_one, fresh, put_again):
            assert store.has_artifact(kept)
    finally:
        t.close()


async def test_the_sweeps_second_look_sees_only_what_was_written_since(db_path: str) -> None:
    t = Tether(db_path)
    try:
        early, late = (t.store.put_artifact(f"artifact {i}".encode()) for i in range(2))
        await t.run(keeps, {"digest": early})
        began = t.store.now()
        await t.run(keeps, {"digest": late})
        seen = t.store.write(lambda tx: tx.mentioned_artifacts({early, late}, since=began))
        assert seen == {late}
        assert t.store.mentioned_artifacts({early, late}) == {early, late}
    finally:
        t.close()


async def test_delete_sweeps_the_artifacts_only_its_tree_kept(db_path: str) -> None:
    """A run deleted on its owner's request takes the files it kept along (those over the
    grace period); one another run mentions, an orphan of someone else's, and one put within
    the grace period stay."""
    t = Tether(db_path)
    try:
        store = t.store
        own, shared, orphan, recent = (store.put_artifact(f"blob {i}".encode())
                                       for i in range(4))
        mine = await t.run(keeps, {"digest": own})
        also_mine = await t.run(keeps, {"digest": shared})
        theirs = await t.run(keeps, {"digest": shared})
        fresh = await t.run(keeps, {"digest": recent})
        for digest in (own, shared, orphan):
            raw_sql(store, "UPDATE artifacts SET created_at = created_at - ? WHERE digest=?",
                    (2 * 3600, digest))

        assert t.delete(mine.id).artifacts == 1
        assert t.delete(also_mine.id).artifacts == 0  # `theirs` still mentions it
        assert t.delete(fresh.id).artifacts == 0  # within the grace period: `prune`, later

        assert not store.has_artifact(own)
        for kept in (shared, orphan, recent):
            assert store.has_artifact(kept)
        assert t.get(theirs.id).status == "succeeded"
    finally:
        t.close()


async def test_a_sweep_failing_after_the_deletion_does_not_fail_the_deletion(
        db_path: str, caplog: pytest.LogCaptureFixture) -> None:
    """The tree's deletion is committed before the sweep: a sweep refused then (a busy or lost
    database) used to raise out of `delete`, so the API answered an error, wrote no audit
    record, and a retry found a 404. Now it is logged; `prune` sweeps later."""
    from tether.store import StoreUnavailable

    t = Tether(db_path)
    try:
        store = t.store
        digest = store.put_artifact(b"left for prune")
        run = await t.run(keeps, {"digest": digest})
        raw_sql(store, "UPDATE artifacts SET created_at = created_at - ? WHERE digest=?",
                (2 * 3600, digest))

        def refused(*_: Any, **__: Any) -> set[str]:
            raise StoreUnavailable("the database is busy")

        real = store.mentioned_artifacts
        store.mentioned_artifacts = refused  # type: ignore[method-assign]
        deleted = t.delete(run.id)
        store.mentioned_artifacts = real  # type: ignore[method-assign]

        assert deleted.roots == [run.id] and deleted.artifacts == 0
        assert store.get_run(run.id) is None and store.has_artifact(digest)
        assert "sweeping its 1 artifact(s) failed" in caplog.text
        assert t.prune(finished_before=store.now() + 1).artifacts == 1
        assert not store.has_artifact(digest)
    finally:
        t.close()
