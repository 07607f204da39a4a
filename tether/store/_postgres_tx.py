"""The PostgreSQL `Tx`: the store's write primitives over one connection inside an open
transaction (READ COMMITTED).

SQLite serialises every writer behind one lock; PostgreSQL lets writers run side by side, so the
two guarantees that lock gave for free are taken with row locks here:
- fencing: `check_lease` locks the run's row (FOR NO KEY UPDATE) for the rest of the transaction,
  so no other worker can claim the run between the check and the commit, and the per-transaction
  cache of verified leases stays true;
- claims: `claim` locks candidate rows with FOR UPDATE SKIP LOCKED, so concurrent workers take
  disjoint runs without waiting on each other, and a run being written by its owner is skipped.
A tenant's concurrency limit is counted under a per-tenant advisory lock, so two workers cannot
both see room for the last slot.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import psycopg

from ._artifact_refs import POSTGRES_FIND, mentioned
from ._codec import decoded_events, dumps, loads
from ._postgres_claim import _Claims
from ._records import Event, NewEvent, RunRecord, Signal
from ._rows import (
    _JSON_COLUMNS,
    _KEPT_FOR_A_RUN,
    _ROOT_AGENT,
    _RUN_COLUMNS,
    _UPDATABLE,
    _run_from_row,
)
from .errors import LeaseLost

_RUN_VALUES = ",".join(["%s"] * len(_RUN_COLUMNS.split(",")))


def _bytes(value: Any) -> Any:
    """bytea comes back as bytes or memoryview depending on the format; codecs want bytes."""
    return bytes(value) if isinstance(value, memoryview) else value


def run_from_pg_row(row: Sequence[Any]) -> RunRecord:
    return _run_from_row([_bytes(v) for v in row])


class _PostgresTx(_Claims):
    """The `Tx` primitives over one connection inside an open transaction."""

    def __init__(self, conn: psycopg.Connection[Any], *, now: float) -> None:
        """`now`: the transaction's time by the server's clock (`PostgresStore.now`): every
        lease, timer and timestamp it writes or compares, whichever host it runs on."""
        self.conn = conn
        self._now = now
        # a run became runnable (queued) or got a timer (wake_at): the store notifies listening
        # workers at commit, so they claim it or sleep until its timer instead of polling
        self.wake_workers = False
        # leases verified in this transaction; valid because check_lease holds the run's row lock
        self._fenced: set[tuple[str, str, int | None]] = set()
        #: when a list: every `append_events` of this transaction is noted in it (the group
        #: committer's hand-over of committed events to its listeners: live trace export)
        self.appended: list[tuple[str, Sequence[NewEvent]]] | None = None

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def now(self) -> float:
        return self._now

    def insert_run(self, run: RunRecord) -> None:
        self.wake_workers = (self.wake_workers or run.status == "queued"
                             or run.wake_at is not None)
        self.conn.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}, root_agent) VALUES ({_RUN_VALUES}, "
            f"{_ROOT_AGENT.replace('?', '%s')})",
            (
                run.id, run.tenant, run.agent, run.spec_version, dumps(run.input), run.status,
                dumps(run.result), run.error, run.reason, run.parent_id, run.root_id or run.id,
                run.depth, run.wake_at, int(run.cancel_requested), run.created_at or self._now,
                run.updated_at or self._now, run.attempts, dumps(run.options),
                dumps(run.flags), run.root_id or run.id, run.agent,
            ),
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=%s", (run_id,))
        return run_from_pg_row(row) if row else None

    def attempts(self, run_id: str) -> int:
        row = self._one("SELECT attempts FROM runs WHERE id=%s", (run_id,))
        return int(row[0]) if row else 0

    def lock_run(self, run_id: str) -> None:
        # the same row lock check_lease takes: a suspend holding it finishes first, and a read
        # after this statement sees what it committed
        self.conn.execute("SELECT 1 FROM runs WHERE id=%s FOR NO KEY UPDATE", (run_id,))

    def update_run(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update run columns {sorted(unknown)}")
        fields.setdefault("updated_at", self._now)
        self.wake_workers = (self.wake_workers or fields.get("status") == "queued"
                             or fields.get("wake_at") is not None)
        values = [dumps(v) if k in _JSON_COLUMNS else
                  (int(v) if k == "cancel_requested" else v) for k, v in fields.items()]
        sets = ", ".join(f"{k}=%s" for k in fields)
        self.conn.execute(f"UPDATE runs SET {sets} WHERE id=%s", (*values, run_id))

    def children(self, run_id: str) -> list[RunRecord]:
        rows = self._all(f"SELECT {_RUN_COLUMNS} FROM runs WHERE parent_id=%s", (run_id,))
        return [run_from_pg_row(r) for r in rows]

    def descendants(self, run_id: str) -> list[RunRecord]:
        rows = self._all(
            f"""WITH RECURSIVE tree(id) AS (
                    SELECT id FROM runs WHERE parent_id=%s
                    UNION ALL SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id)
                SELECT {_RUN_COLUMNS} FROM runs WHERE id IN (SELECT id FROM tree)""",
            (run_id,),
        )
        return [run_from_pg_row(r) for r in rows]

    def lease_holder(self, run_id: str) -> tuple[str, float] | None:
        row = self._one("SELECT owner, expires_at FROM leases WHERE run_id=%s", (run_id,))
        return (row[0], row[1]) if row else None

    def check_lease(self, run_id: str, owner: str, epoch: int | None = None, *,
                    ttl: float | None = None) -> None:
        if (run_id, owner, epoch) in self._fenced:
            return
        # The run's row lock (held to commit) keeps every other worker's claim off this run;
        # the lease is read after it, in a statement of its own: its snapshot then holds the
        # lease of a claim this check waited for. (Read in the locking statement, it was the
        # lease as it stood before the wait, and a worker whose run had just been taken over
        # still wrote: duplicate journal seqs in the PostgreSQL chaos test. Locking the lease
        # row too would fix that but collide with the heartbeat's renewals.) In a pipeline
        # both go out in one round trip. No lease row (nor run): not held.
        self.conn.execute("SELECT 1 FROM runs WHERE id=%s FOR NO KEY UPDATE", (run_id,))
        if ttl is not None:
            # extended in the same statement that checks it (see `Tx.check_lease`): the lease
            # row is locked after the run's, as every claim locks them (a claim skips a locked
            # run); the heartbeat's renewal of the same rows is a transaction of the same
            # worker's committer, never one at the same time
            held = self._one(
                "UPDATE leases SET expires_at=GREATEST(expires_at, %s) WHERE run_id=%s AND "
                "owner=%s AND (%s::int IS NULL OR epoch=%s::int) RETURNING 1",
                (self._now + ttl, run_id, owner, epoch, epoch))
            if held is None:
                row = self._one("SELECT owner FROM leases WHERE run_id=%s", (run_id,))
                raise LeaseLost(run_id, owner, row[0] if row else None)
            self._fenced.add((run_id, owner, epoch))
            return
        row = self._one("SELECT owner, epoch FROM leases WHERE run_id=%s", (run_id,))
        if row is None or row[0] != owner or (epoch is not None and row[1] != epoch):
            raise LeaseLost(run_id, owner, row[0] if row else None)
        self._fenced.add((run_id, owner, epoch))

    def grant_lease(self, run_id: str, owner: str, ttl: float, epoch: int) -> None:
        self.conn.execute(
            "INSERT INTO leases (run_id, owner, expires_at, acquired_at, epoch) "
            "VALUES (%s,%s,%s,%s,%s)", (run_id, owner, self._now + ttl, self._now, epoch))

    def release_lease(self, run_id: str, owner: str | None = None) -> None:
        self._fenced = {f for f in self._fenced if f[0] != run_id}
        if owner is None:
            self.conn.execute("DELETE FROM leases WHERE run_id=%s", (run_id,))
        else:
            self.conn.execute("DELETE FROM leases WHERE run_id=%s AND owner=%s", (run_id, owner))

    def append_events(self, run_id: str, events: Sequence[NewEvent]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (run_id, seq, kind, key, name, data, ts) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                [(run_id, e.seq, e.kind, e.key, e.name, e.data, e.ts) for e in events],
            )
        if self.appended is not None:
            self.appended.append((run_id, events))

    def next_seq(self, run_id: str) -> int:
        row = self._one("SELECT MAX(seq) FROM events WHERE run_id=%s", (run_id,))
        return (row[0] or 0) + 1

    def insert_signal(self, run_id: str, name: str, payload: bytes | None) -> int:
        row = self._one(
            "INSERT INTO signals (run_id, name, payload, created_at) VALUES (%s,%s,%s,%s) "
            "RETURNING id", (run_id, name, payload, self._now))
        return int(row[0])

    def consume_signal(self, run_id: str, name: str, consumer: str) -> Signal | None:
        row = self._one(
            "SELECT id, payload, created_at FROM signals WHERE run_id=%s AND name=%s AND "
            "consumed_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE",
            (run_id, name),
        )
        if row is None:
            return None
        self.conn.execute("UPDATE signals SET consumed_by=%s WHERE id=%s", (consumer, row[0]))
        return Signal(id=row[0], run_id=run_id, name=name, payload=loads(_bytes(row[1])),
                      created_at=row[2])

    def load_events(self, run_id: str) -> list[Event]:
        rows = self._all("SELECT seq, kind, key, name, data, ts FROM events WHERE run_id=%s "
                         "ORDER BY seq", (run_id,))
        return decoded_events(run_id, rows, "the PostgreSQL journal", _bytes)

    def pending_signals(self, run_id: str) -> list[Signal]:
        rows = self._all("SELECT id, name, payload, created_at FROM signals WHERE run_id=%s "
                         "AND consumed_by IS NULL ORDER BY id", (run_id,))
        return [Signal(r[0], run_id, r[1], loads(_bytes(r[2])), r[3]) for r in rows]

    def pending_signal_names(self, run_id: str) -> set[str]:
        rows = self._all(
            "SELECT DISTINCT name FROM signals WHERE run_id=%s AND consumed_by IS NULL", (run_id,))
        return {r[0] for r in rows}

    def renew(self, owner: str, run_ids: Sequence[str], ttl: float) -> list[str]:
        if not run_ids:
            return []
        rows = self._all(
            "UPDATE leases SET expires_at=%s WHERE owner=%s AND run_id = ANY(%s) RETURNING run_id",
            (self._now + ttl, owner, list(run_ids)),
        )
        return [r[0] for r in rows]

    def cancel_requested(self, run_ids: Sequence[str]) -> list[str]:
        if not run_ids:
            return []
        flagged = {r[0] for r in self._all(
            "SELECT id FROM runs WHERE cancel_requested <> 0 AND id = ANY(%s)", (list(run_ids),))}
        return [run_id for run_id in run_ids if run_id in flagged]

    def count_active(self, tenant: str) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM runs WHERE tenant=%s AND status='running'", (tenant,))
        return int(row[0])

    def add_usage(self, tenant: str, day: str, amounts: dict[str, float]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO usage (tenant, day, metric, amount) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT(tenant, day, metric) DO UPDATE SET "
                "amount = usage.amount + excluded.amount",
                [(tenant, day, metric, float(amount)) for metric, amount in amounts.items()],
            )

    def budget_spend(self, scopes: Sequence[str]) -> dict[str, dict[str, float]]:
        if not scopes:
            return {}
        rows = self._all(
            "SELECT scope, metric, amount FROM budget_spend WHERE scope = ANY(%s)", (list(scopes),))
        out: dict[str, dict[str, float]] = {}
        for scope, metric, amount in rows:
            out.setdefault(scope, {})[metric] = amount
        return out

    def add_budget_spend(self, scopes: Sequence[str], amounts: dict[str, float]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO budget_spend (scope, metric, amount) VALUES (%s,%s,%s) "
                "ON CONFLICT(scope, metric) DO UPDATE SET "
                "amount = budget_spend.amount + excluded.amount",
                [(scope, metric, float(amount)) for scope in scopes
                 for metric, amount in amounts.items()],
            )

    def hold_budget(self, run_id: str, key: str) -> bool:
        cur = self.conn.execute(
            "INSERT INTO budget_holds (run_id, key) VALUES (%s,%s) ON CONFLICT DO NOTHING",
            (run_id, key))
        return cur.rowcount == 1

    def release_budget_hold(self, run_id: str, key: str) -> bool:
        cur = self.conn.execute(
            "DELETE FROM budget_holds WHERE run_id=%s AND key=%s", (run_id, key))
        return cur.rowcount == 1

    def put_artifact(self, digest: str, data: bytes) -> None:
        # put again: its time is renewed, so that a sweep (`Tether.prune`) spares it
        self.conn.execute(
            "INSERT INTO artifacts (digest, size, data, created_at) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
            (digest, len(data), data, self._now),
        )

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        return mentioned(lambda sql, params: self.conn.execute(
            sql.replace("?", "%s").encode(), params).fetchall(), digests, since=since,
            find=POSTGRES_FIND)

    def delete_artifacts(self, digests: Collection[str], *, created_before: float) -> int:
        row = self.conn.execute(
            "WITH gone AS (DELETE FROM artifacts WHERE digest = ANY(%s) AND created_at < %s "
            "RETURNING 1) SELECT count(*) FROM gone", (sorted(digests), created_before)
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def tree(self, run_id: str) -> list[tuple[str, str, str | None]]:
        ids = [r[0] for r in self.conn.execute(
            """WITH RECURSIVE tree(id) AS (
                   SELECT id FROM runs WHERE id=%s
                   UNION ALL SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id)
               SELECT id FROM tree""", (run_id,)).fetchall()]
        # locked in one order (no deadlock between two deleters), and read again under the
        # lock: a status that changed since the walk (a retry) is the committed one
        rows = self.conn.execute(
            "SELECT id, status, parent_id FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (ids,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        ids = list(run_ids)
        # counted by a query, not `rowcount`: a batch runs in pipeline mode, where it is -1
        row = self.conn.execute("WITH gone AS (DELETE FROM events WHERE run_id = ANY(%s) "
                                "RETURNING 1) SELECT count(*) FROM gone", (ids,)).fetchone()
        events = row[0] if row is not None else 0
        for table, column in _KEPT_FOR_A_RUN:
            self.conn.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (ids,))
        return int(events)

    def mark_spans_exported(self, marks: dict[str, int]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO span_exports (run_id, seq, updated_at) VALUES (%s,%s,%s) "
                "ON CONFLICT(run_id) DO UPDATE SET "
                "seq = GREATEST(span_exports.seq, excluded.seq), updated_at = excluded.updated_at",
                [(run_id, int(seq), self._now) for run_id, seq in marks.items()])

    # -- the server's API keys and audit log (tether.server; rows as tuples, read in column order)
    def insert_api_key(self, key_id: str, digest: str, tenant: str, role: str, name: str) -> None:
        self.conn.execute(
            "INSERT INTO api_keys (id, hash, tenant, role, name, created_at) "
            "VALUES (%s,%s,%s,%s,%s,%s)", (key_id, digest, tenant, role, name, self._now))

    def api_keys(self, *, digest: str | None = None, tenant: str | None = None
                 ) -> list[tuple[Any, ...]]:
        """(id, tenant, role, name, created_at, revoked_at) rows, by hash or tenant or all."""
        where, params = ("WHERE hash=%s", (digest,)) if digest is not None else (
            ("WHERE tenant=%s", (tenant,)) if tenant is not None else ("", ()))
        return [tuple(r) for r in self._all(
            f"SELECT id, tenant, role, name, created_at, revoked_at FROM api_keys {where} "
            "ORDER BY created_at", params)]

    def revoke_api_key(self, key_id: str) -> bool:
        cur = self.conn.execute(
            "UPDATE api_keys SET revoked_at=%s WHERE id=%s AND revoked_at IS NULL",
            (self._now, key_id))
        return cur.rowcount == 1

    def insert_audit(self, tenant: str, actor: str, action: str, run_id: str | None,
                     detail: Any) -> int:
        row = self._one(
            "INSERT INTO audit (ts, tenant, actor, action, run_id, detail) "
            "VALUES (%s,%s,%s,%s,%s,%s) RETURNING id",
            (self._now, tenant, actor, action, run_id, dumps(detail)))
        return int(row[0])

    def audit(self, tenant: str, *, after_id: int = 0, limit: int = 100
              ) -> list[tuple[Any, ...]]:
        """(id, ts, tenant, actor, action, run_id, detail) rows of one tenant, oldest first."""
        rows = self._all(
            "SELECT id, ts, tenant, actor, action, run_id, detail FROM audit "
            "WHERE tenant=%s AND id>%s ORDER BY id LIMIT %s", (tenant, after_id, limit))
        return [(*r[:6], loads(_bytes(r[6]))) for r in rows]
