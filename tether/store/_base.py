"""The store interface every backend implements.

Two halves: `Store` (reads, plus `write` which runs a batch of operations in one transaction) and
`Tx` (the write primitives an operation may use inside that transaction). Runtime logic such as
"send a signal and wake the run" is written once, as an operation over `Tx`, so a backend only
implements small primitives and both backends behave the same.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from ._records import Event, NewEvent, RunRecord, Signal

T = TypeVar("T")


class Tx(Protocol):
    """Write primitives available inside one transaction."""

    #: None, or a list in which the transaction notes every `append_events` (run id, events):
    #: how the group committer learns what each op journaled without wrapping the transaction
    appended: list[tuple[str, Sequence[NewEvent]]] | None

    def now(self) -> float: ...

    def insert_run(self, run: RunRecord) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def attempts(self, run_id: str) -> int:
        """How many times the run was claimed (its fencing epoch), without decoding the rest
        of its record: a claim must not fail for a run whose record is unreadable."""
        ...

    def lock_run(self, run_id: str) -> None:
        """Hold the run's row until commit before reading it to decide a change another
        transaction may be deciding too (a child waking its parent while the parent suspends).
        PostgreSQL runs such writers side by side; SQLite already serialises them."""
        ...

    def update_run(self, run_id: str, **fields: Any) -> None: ...

    def children(self, run_id: str) -> list[RunRecord]: ...

    def descendants(self, run_id: str) -> list[RunRecord]: ...

    def lease_holder(self, run_id: str) -> tuple[str, float] | None: ...

    def check_lease(self, run_id: str, owner: str, epoch: int | None = None, *,
                    ttl: float | None = None) -> None:
        """Raise LeaseLost unless `owner` holds the run's lease — and, given `epoch`, holds it
        from that very claim (fencing for every worker write).

        Given `ttl`, the lease is also extended, in this transaction, to at least now + `ttl`.
        A lease that ran out while its worker could not renew it (the database away, the
        process paused) is still the worker's until another claims the run; a write under it
        that starts a side effect, followed at once by another worker's claim, left that
        effect running while the run was taken over and its step declared in doubt — and
        retried. Extended, the lease keeps the run the writer's for a whole `ttl` from the
        write's transaction, long enough for its heartbeat to renew it again."""
        ...

    def grant_lease(self, run_id: str, owner: str, ttl: float, epoch: int) -> None:
        """Lease a run the caller has just inserted as running (created already claimed, never
        queued: `Worker.start_new`). The run must not be leased already."""
        ...

    def release_lease(self, run_id: str, owner: str | None = None) -> None: ...

    def append_events(self, run_id: str, events: Sequence[NewEvent]) -> None: ...

    def next_seq(self, run_id: str) -> int: ...

    def insert_signal(self, run_id: str, name: str, payload: bytes | None) -> int: ...

    def consume_signal(self, run_id: str, name: str, consumer: str) -> Signal | None: ...

    def pending_signal_names(self, run_id: str) -> set[str]: ...

    def load_events(self, run_id: str) -> list[Event]:
        """The run's journal as this transaction reads it: a check and the write it allows in
        one transaction (an approval decision, `tether.guards.inbox`)."""
        ...

    def pending_signals(self, run_id: str) -> list[Signal]:
        """The run's signals not consumed yet, oldest first, as this transaction reads them."""
        ...

    def claim(
        self, owner: str, limit: int, ttl: float, tenant_limits: dict[str, int] | None = None,
        exclude: Sequence[str] = (), *, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> list[str]:
        """Lease runnable runs (queued, due, or abandoned by a dead worker), oldest first; the
        run's `attempts` becomes the lease's fencing epoch. `exclude`: runs the caller executes.

        A worker queue (None: any): `tenants`, only runs of these tenants (a child carries its
        parent's tenant unless spawned into another); `agents`, only runs whose tree's root
        executes one of these agent references, so a child follows its root whatever agent it
        runs. The filters apply before `limit`: runs the caller does not serve never fill it."""
        ...

    def next_wake(
        self, now: float, *, owner: str | None = None, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> float | None:
        """When a run of this queue (see `claim`) next becomes claimable without any commit to
        announce it: the earliest timer of a waiting run, or the earliest lease expiry of a
        running run not held by `owner` (a dead worker's run is claimable then). `now` when
        something is claimable already (queued, or running with no lease) and the caller did
        not take it (tenant limits, locked by another worker); None when nothing is pending. A
        worker woken by LISTEN/NOTIFY sleeps until then instead of polling."""
        ...

    def renew(self, owner: str, run_ids: Sequence[str], ttl: float) -> list[str]:
        """Extend `owner`'s leases of `run_ids`; returns those it still holds (a run another
        worker claimed is lost)."""
        ...

    def cancel_requested(self, run_ids: Sequence[str]) -> list[str]:
        """Which of `run_ids` have a cancel requested, in the order given: one read of the
        flag for all the runs a worker holds (its heartbeat), not a whole record per run."""
        ...

    def count_active(self, tenant: str) -> int: ...

    def add_usage(self, tenant: str, day: str, amounts: dict[str, float]) -> None:
        """Add to a tenant's per-day usage counters (metric -> amount), creating them at 0."""
        ...

    def budget_spend(self, scopes: Sequence[str]) -> dict[str, dict[str, float]]:
        """What each budget scope (a run and its descendants) has reserved, per metric; a
        scope nothing was reserved for yet is absent."""
        ...

    def add_budget_spend(self, scopes: Sequence[str], amounts: dict[str, float]) -> None:
        """Add `amounts` (metric -> amount, may be negative) to every scope, creating rows at 0."""
        ...

    def hold_budget(self, run_id: str, key: str) -> bool:
        """Record that the effect at `key` holds a reservation; False if it already did."""
        ...

    def release_budget_hold(self, run_id: str, key: str) -> bool:
        """Forget the effect's reservation; False if it held none."""
        ...

    def put_artifact(self, digest: str, data: bytes) -> None: ...

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        """Those of `digests` that a stored blob (an event, a run, a signal) mentions; with
        `since`, only among blobs written since then (`_artifact_refs`)."""
        ...

    def delete_artifacts(self, digests: Collection[str], *, created_before: float) -> int:
        """Delete those of `digests` stored (or last put) before `created_before`; how many."""
        ...

    def tree(self, run_id: str) -> list[tuple[str, str, str | None]]:
        """`(id, status, parent_id)` of `run_id` and every run below it (none: no such run),
        locked against change by others until the transaction ends."""
        ...

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete runs and all that is kept for them: journal, signals, leases, budget holds
        and counters, span export marks (the tenant's usage counters and the audit log stay).
        Returns how many events were deleted."""
        ...

    def mark_spans_exported(self, marks: dict[str, int]) -> None:
        """Record, per run id, the journal seq up to which its spans were exported (a mark
        only moves forward)."""
        ...


Operation = Callable[[Tx], T]


class Store(Protocol):
    """A Tether database. All methods are synchronous and thread-safe; the runtime's group
    committer calls `write` from its own thread."""

    url: str

    def now(self) -> float:
        """The time (a Unix timestamp) by the store's clock: what every host compares lease
        expiries and timers in. Workers on several hosts must not each trust their own."""
        ...

    def write(self, op: Callable[[Tx], T]) -> T:
        """Run one operation in its own transaction."""
        ...

    def write_batch(self, ops: Sequence[Callable[[Tx], Any]], *,
                    wait: bool = True) -> list[tuple[bool, Any]] | None:
        """Group commit: run all operations in ONE durable transaction. Each operation is
        isolated (a savepoint): one that raises is rolled back alone. Each slot of the result is
        `(True, value)` or `(False, exception)`. An operation may be called more than once (the
        PostgreSQL store runs a batch again after a lost deadlock, or op by op after a failure);
        only the committed call counts, so operations act on the `Tx` only.

        `wait=False`: if another connection holds the write lock, return None at once, having
        done nothing, instead of waiting up to the busy timeout (an inline commit on an event
        loop's thread must not block it)."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def artifacts_before(self, created_before: float) -> list[str]:
        """Digests of the artifacts stored (or last put) before `created_before`."""
        ...

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        """As `Tx.mentioned_artifacts`, outside a transaction (a long read)."""
        ...

    def finished_roots(self, *, before: float, after: tuple[float, str] | None = None,
                       tenant: str | None = None, statuses: Collection[str] = (),
                       limit: int = 100) -> list[tuple[str, float]]:
        """`(id, updated_at)` of runs without a parent that ended (one of `statuses`) before
        `before`, oldest first, from just after `after` (a previous page's last pair)."""
        ...

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        tenant: str | None = None,
        parent_id: str | None = None,
        agent: str | None = None,
        flagged: bool = False,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Newest first; `agent`: the reference the runs record (`RunRecord.agent`);
        `flagged`: only runs flagged for review. Filtered by the database, not after loading
        the newest `limit` runs (which hid every flagged run older than those)."""
        ...

    def load_events(self, run_id: str, after_seq: int = 0) -> list[Event]: ...

    def count_events(self, run_id: str) -> int: ...

    def count_runs(self, *, tenant: str | None = None) -> dict[str, int]:
        """How many runs there are in each status (of `tenant`, or all): a queue's depth and a
        tenant's usage page, counted by the database, whatever their number."""
        ...

    def run_ids_with_prefix(self, prefix: str, limit: int = 10, *,
                            outermost: bool = False) -> list[str]:
        """Run ids starting with `prefix`, sorted, at most `limit`. `outermost`: only ids with
        no `.` after the prefix — a child's id is its parent's id + `.KEY`, so this leaves out
        the descendants of every match, however many there are."""
        ...

    def leases(self, run_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The current lease (owner, expires_at) of each of `run_ids` that has one."""
        ...

    def pending_signals(self, run_id: str) -> list[Signal]: ...

    def runs_with_pending_signals(self, prefix: str) -> list[str]:
        """The runs holding a signal not consumed yet whose name starts with `prefix`: a run
        decided on but not yet run again (an approval's first of two signatures)."""
        ...

    def descendants(self, run_id: str) -> list[RunRecord]: ...

    def get_usage(self, tenant: str, day: str) -> dict[str, float]: ...

    def get_budget_spend(self, scope: str) -> dict[str, float]: ...

    def next_wake_time(self) -> float | None: ...

    def put_artifact(self, data: bytes) -> str: ...

    def get_artifact(self, digest: str) -> bytes: ...

    def has_artifact(self, digest: str) -> bool: ...

    def integrity_check(self) -> list[str]: ...

    def schema_version(self) -> int: ...

    def spans_exported(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The export mark of each of `run_ids` that has one (see `Tx.mark_spans_exported`)."""
        ...

    def close(self) -> None: ...
