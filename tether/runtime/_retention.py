"""Deleting finished runs: one tree on request (`Tether.delete`), or every tree that ended
before a cutoff (`Tether.prune`).

Why: the journal keeps everything a run did, and a deployment that runs agents for months
grows it without bound; some of it must go when its owner says so (retention rules, a user's
request to erase their data). A tree goes whole and only once nothing in it can change, each
in one transaction with everything kept for it (`ops.delete_tree`): a reader never sees half a
run. The tenant's usage counters and the audit log are kept. Artifacts are stored once by
content and referenced by digest from any run's data, so they go separately: after pruning,
those nothing stored mentions any more are swept (`sweep_artifacts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from tether.store import TERMINAL_STATUSES, Store, StoreError, Tx, digests_in, dumps

from . import ops
from .errors import RunNotDeletable, RunNotFound

log = logging.getLogger("tether.runtime")

#: trees deleted per transaction while pruning: large enough to be quick, small enough that a
#: worker's writes are never held up for long
PRUNE_BATCH = 50
#: an artifact put within this long (less `ARTIFACT_RENEW_S`) is never swept: a run that put
#: one and has not journaled its digest yet keeps it
ARTIFACT_GRACE_S = 3600.0
#: how far back the sweep's own transaction looks again for blobs written while it read: those
#: committed by a transaction that took its time longer than this are not seen
RECHECK_S = 300.0


@dataclass
class Deleted:
    """What one deletion or prune removed (or, dry, would remove)."""

    runs: list[str] = field(default_factory=list)  # every run deleted, roots and descendants
    roots: list[str] = field(default_factory=list)
    events: int = 0
    #: roots that qualified by age but were not deleted, and why (a descendant still running)
    kept: dict[str, str] = field(default_factory=dict)
    #: artifacts swept because nothing stored mentions them any more (`prune`; a dry run
    #: counts those unmentioned now)
    artifacts: int = 0


def delete_tree(store: Store, run_id: str) -> Deleted:
    """One tree, then the artifacts it kept that nothing else stored mentions (by the sweep's
    rules: one put within the grace period waits for a later `prune`). Without the sweep, a
    run deleted on its owner's request left the files its sandboxes wrote in the database."""
    kept = _tree_artifacts(store, run_id)
    ids, events = store.write(ops.delete_tree(run_id))
    swept = 0
    if kept:
        # the tree is gone, committed: a sweep that fails now (a busy or lost database) must
        # not make the deletion look failed (the caller would retry into a 404, the API skip
        # its audit record); what it left is swept by the next `prune`
        try:
            swept = sweep_artifacts(store, among=kept)
        except StoreError as exc:
            log.warning("run %s deleted; sweeping its %d artifact(s) failed (%s): `tether "
                        "prune` sweeps them", run_id, len(kept), exc)
    return Deleted(runs=ids, roots=[run_id], events=events, artifacts=swept)


def _tree_artifacts(store: Store, run_id: str) -> set[str]:
    """The stored artifacts the (finished, so unchanging) tree of `run_id` mentions: read before
    it is deleted, so the sweep reads the rest of the database for these alone."""
    root = store.get_run(run_id)
    if root is None:
        return set()  # the deletion says so
    found: set[str] = set()
    for run in [root, *store.descendants(run_id)]:
        blobs = [run.input, run.result, run.options, run.flags,
                 *(e.data for e in store.load_events(run.id))]
        for blob in blobs:
            if blob is not None:
                found |= digests_in(dumps(blob))
    return {d for d in found if store.has_artifact(d)}


def prune(store: Store, *, finished_before: float, tenant: str | None = None,
          statuses: Collection[str] | None = None, dry_run: bool = False,
          batch: int = PRUNE_BATCH) -> Deleted:
    """Delete every run tree whose root ended (in one of `statuses`, by default any end)
    before `finished_before`, by the store's clock. `dry_run`: count what would go, delete
    nothing."""
    wanted = set(TERMINAL_STATUSES if statuses is None else statuses)
    unknown = wanted - TERMINAL_STATUSES
    if not wanted:
        raise ValueError(f"statuses is empty: give at least one of {sorted(TERMINAL_STATUSES)}, "
                         "or None for every end")
    if unknown:
        raise ValueError(f"only finished runs are pruned: {sorted(unknown)} is not one of "
                         f"{sorted(TERMINAL_STATUSES)}")
    done = Deleted()
    after: tuple[float, str] | None = None
    while True:
        page = store.finished_roots(before=finished_before, after=after, tenant=tenant,
                                    statuses=wanted, limit=batch)
        if not page:
            done.artifacts = sweep_artifacts(store, dry_run=dry_run)
            return done
        after = (page[-1][1], page[-1][0])
        roots = [run_id for run_id, _ in page]
        delete = _dry if dry_run else ops.delete_tree
        results = store.write_batch([delete(r) for r in roots])
        assert results is not None  # waited for
        for run_id, (ok, value) in zip(roots, results, strict=True):
            if isinstance(value, _WouldDelete):
                ok, value = True, value.deleted
            if ok:
                ids, events = value
                done.runs += ids
                done.roots.append(run_id)
                done.events += events
            elif isinstance(value, RunNotDeletable):
                done.kept[run_id] = str(value)
            elif not isinstance(value, RunNotFound):  # deleted meanwhile: nothing to do
                raise value


def sweep_artifacts(store: Store, *, grace_s: float = ARTIFACT_GRACE_S,
                    dry_run: bool = False, among: Collection[str] | None = None) -> int:
    """Delete the artifacts that no stored blob mentions and that were not put within
    `grace_s`; returns how many (dry: how many would go).

    The full read runs outside any transaction (workers go on writing); the deleting
    transaction then reads again what was written since shortly before the read began
    (`RECHECK_S`) and spares what that mentions. `put_artifact` renews an artifact's time, so
    one put again since the cutoff is spared as well. `among`: only these digests are swept
    (one tree's, after its deletion)."""
    began = store.now()
    cutoff = began - grace_s
    candidates = set(store.artifacts_before(cutoff))
    if among is not None:
        candidates &= set(among)
    unmentioned = candidates - store.mentioned_artifacts(candidates)
    if dry_run or not unmentioned:
        return len(unmentioned)

    def op(tx: Tx) -> int:
        recent = tx.mentioned_artifacts(unmentioned, since=began - RECHECK_S)
        return tx.delete_artifacts(unmentioned - recent, created_before=cutoff)
    return int(store.write(op))


class _WouldDelete(Exception):
    """Raised by a dry run's operation after deleting, so that its savepoint rolls back: the
    dry run counts by the same checks and statements as the real one."""

    def __init__(self, deleted: tuple[list[str], int]) -> None:
        super().__init__("dry run")
        self.deleted = deleted


def _dry(run_id: str) -> Callable[[Tx], None]:
    delete = ops.delete_tree(run_id)

    def op(tx: Tx) -> None:
        raise _WouldDelete(delete(tx))
    return op
