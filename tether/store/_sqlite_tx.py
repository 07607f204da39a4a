"""The SQLite `Tx`: the store's write primitives over one connection inside an open transaction.

Kept apart from `SQLiteStore` (which owns connections, transactions, batching and reads) so the
SQL each runtime write issues can be read in one place (the `runs` row layout both stores share
is `_rows`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from typing import Any

from ._artifact_refs import SQLITE_FIND, mentioned
from ._codec import decoded_events, dumps, loads
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

# ids per `IN (...)` list: under the 999 host parameters older SQLite builds allow per statement
_IN_CHUNK = 900
#: `update_run`'s statement for each set of columns it was given (checked when first made):
#: the runtime updates a handful of combinations, each many times a second
_UPDATES: dict[tuple[str, ...], str] = {}
_UPDATES_MAX = 256


def _queue_filter(tenants: Collection[str] | None, agents: Collection[str] | None
                  ) -> tuple[str, list[str]]:
    """The claim's worker-queue conditions (see `Tx.claim`) as SQL to append to its WHERE, with
    their parameters (the agent condition is on the runs' `root_agent`). An empty collection
    serves nothing (SQLite's `IN ()` is false)."""
    sql, params = "", []
    for column, values in (("r.tenant", tenants), ("r.root_agent", agents)):
        if values is not None:
            wanted = sorted(set(values))
            sql += f" AND {column} IN ({','.join('?' * len(wanted))})"
            params += wanted
    return sql, params


class _SQLiteTx:
    """The `Tx` primitives over one connection inside an open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._now = time.time()
        # Leases verified in this transaction: nothing can take a lease while we hold the write
        # lock, so one check per run per transaction fences every write of the batch.
        self._fenced: set[tuple[str, str, int | None]] = set()
        #: when a list: every `append_events` of this transaction is noted in it (the group
        #: committer's hand-over of committed events to its listeners: live trace export)
        self.appended: list[tuple[str, Sequence[NewEvent]]] | None = None

    def now(self) -> float:
        return self._now

    def insert_run(self, run: RunRecord) -> None:
        self.conn.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}, root_agent) "
            f"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,{_ROOT_AGENT})",
            (
                run.id, run.tenant, run.agent, run.spec_version, dumps(run.input), run.status,
                dumps(run.result), run.error, run.reason, run.parent_id, run.root_id or run.id,
                run.depth, run.wake_at, int(run.cancel_requested), run.created_at or self._now,
                run.updated_at or self._now, run.attempts, dumps(run.options),
                dumps(run.flags), run.root_id or run.id, run.agent,
            ),
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        return _run_from_row(row) if row else None

    def attempts(self, run_id: str) -> int:
        row = self.conn.execute("SELECT attempts FROM runs WHERE id=?", (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def lock_run(self, run_id: str) -> None:
        """Nothing to do: one SQLite writer at a time already holds the database."""

    def update_run(self, run_id: str, **fields: Any) -> None:
        fields.setdefault("updated_at", self._now)
        columns = tuple(fields)
        sql = _UPDATES.get(columns)
        if sql is None:
            unknown = set(fields) - _UPDATABLE
            if unknown:
                raise ValueError(f"cannot update run columns {sorted(unknown)}")
            sql = f"UPDATE runs SET {', '.join(f'{k}=?' for k in columns)} WHERE id=?"
            if len(_UPDATES) < _UPDATES_MAX:
                _UPDATES[columns] = sql
        values = [dumps(v) if k in _JSON_COLUMNS else v for k, v in fields.items()]
        self.conn.execute(sql, (*values, run_id))

    def children(self, run_id: str) -> list[RunRecord]:
        rows = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE parent_id=?", (run_id,))
        return [_run_from_row(r) for r in rows]

    def descendants(self, run_id: str) -> list[RunRecord]:
        rows = self.conn.execute(
            f"""WITH RECURSIVE tree(id) AS (
                    SELECT id FROM runs WHERE parent_id=?
                    UNION ALL SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id)
                SELECT {_RUN_COLUMNS} FROM runs WHERE id IN (SELECT id FROM tree)""",
            (run_id,),
        )
        return [_run_from_row(r) for r in rows]

    def lease_holder(self, run_id: str) -> tuple[str, float] | None:
        row = self.conn.execute(
            "SELECT owner, expires_at FROM leases WHERE run_id=?", (run_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def check_lease(self, run_id: str, owner: str, epoch: int | None = None, *,
                    ttl: float | None = None) -> None:
        if (run_id, owner, epoch) in self._fenced:
            return
        if ttl is not None:  # extended as it is checked (`Tx.check_lease`)
            if self.conn.execute(
                "UPDATE leases SET expires_at=MAX(expires_at, ?) WHERE run_id=? AND owner=? "
                "AND (? IS NULL OR epoch=?)", (self._now + ttl, run_id, owner, epoch, epoch),
            ).rowcount == 0:
                row = self.conn.execute("SELECT owner FROM leases WHERE run_id=?",
                                        (run_id,)).fetchone()
                raise LeaseLost(run_id, owner, row[0] if row else None)
            self._fenced.add((run_id, owner, epoch))
            return
        row = self.conn.execute(
            "SELECT owner, epoch FROM leases WHERE run_id=?", (run_id,)
        ).fetchone()
        if row is None or row[0] != owner or (epoch is not None and row[1] != epoch):
            raise LeaseLost(run_id, owner, row[0] if row else None)
        self._fenced.add((run_id, owner, epoch))

    def grant_lease(self, run_id: str, owner: str, ttl: float, epoch: int) -> None:
        self.conn.execute(
            "INSERT INTO leases (run_id, owner, expires_at, acquired_at, epoch) "
            "VALUES (?,?,?,?,?)", (run_id, owner, self._now + ttl, self._now, epoch))
        # held until this transaction ends (it holds the database): a check in the same
        # transaction (a run created claimed and finished at once) need not read it back
        self._fenced.update(((run_id, owner, epoch), (run_id, owner, None)))

    def release_lease(self, run_id: str, owner: str | None = None) -> None:
        self._fenced = {f for f in self._fenced if f[0] != run_id}
        if owner is None:
            self.conn.execute("DELETE FROM leases WHERE run_id=?", (run_id,))
        else:
            self.conn.execute("DELETE FROM leases WHERE run_id=? AND owner=?", (run_id, owner))

    def append_events(self, run_id: str, events: Sequence[NewEvent]) -> None:
        self.conn.executemany(
            "INSERT INTO events (run_id, seq, kind, key, name, data, ts) VALUES (?,?,?,?,?,?,?)",
            [(run_id, e.seq, e.kind, e.key, e.name, e.data, e.ts) for e in events],
        )
        if self.appended is not None:
            self.appended.append((run_id, events))

    def next_seq(self, run_id: str) -> int:
        row = self.conn.execute("SELECT MAX(seq) FROM events WHERE run_id=?", (run_id,)).fetchone()
        return (row[0] or 0) + 1

    def insert_signal(self, run_id: str, name: str, payload: bytes | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO signals (run_id, name, payload, created_at) VALUES (?,?,?,?)",
            (run_id, name, payload, self._now),
        )
        return int(cur.lastrowid or 0)

    def consume_signal(self, run_id: str, name: str, consumer: str) -> Signal | None:
        row = self.conn.execute(
            "SELECT id, payload, created_at FROM signals WHERE run_id=? AND name=? AND "
            "consumed_by IS NULL ORDER BY id LIMIT 1",
            (run_id, name),
        ).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE signals SET consumed_by=? WHERE id=?", (consumer, row[0]))
        return Signal(id=row[0], run_id=run_id, name=name, payload=loads(row[1]), created_at=row[2])

    def load_events(self, run_id: str) -> list[Event]:
        rows = self.conn.execute("SELECT seq, kind, key, name, data, ts FROM events WHERE "
                                 "run_id=? ORDER BY seq", (run_id,)).fetchall()
        return decoded_events(run_id, rows, "the SQLite journal")

    def pending_signals(self, run_id: str) -> list[Signal]:
        rows = self.conn.execute("SELECT id, name, payload, created_at FROM signals WHERE "
                                 "run_id=? AND consumed_by IS NULL ORDER BY id", (run_id,))
        return [Signal(r[0], run_id, r[1], loads(r[2]), r[3]) for r in rows]

    def pending_signal_names(self, run_id: str) -> set[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT name FROM signals WHERE run_id=? AND consumed_by IS NULL", (run_id,)
        )
        return {r[0] for r in rows}

    def claim(
        self, owner: str, limit: int, ttl: float, tenant_limits: dict[str, int] | None = None,
        exclude: Sequence[str] = (), *, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> list[str]:
        now = self._now
        skip = set(exclude)
        queue, queue_params = _queue_filter(tenants, agents)
        wanted = (max(limit * 4, limit) if tenant_limits else limit) + len(skip)
        # One ordered, limited read per way a run becomes claimable, each on an index (queued:
        # by status or queue, then created_at; due timers: the wake_at index; abandoned: the
        # running runs, as many as workers execute), merged oldest first. A single query with
        # the three ORed read and sorted every runnable run: 0.6 s per claim behind 200k
        # queued runs.
        rows = self.conn.execute(
            f"""SELECT id, tenant FROM (
                 SELECT * FROM (SELECT r.id, r.tenant, r.created_at FROM runs r
                   WHERE r.status = 'queued'{queue} ORDER BY r.created_at LIMIT ?)
                 UNION ALL
                 SELECT * FROM (SELECT r.id, r.tenant, r.created_at FROM runs r
                   WHERE r.status = 'waiting' AND r.wake_at IS NOT NULL AND r.wake_at <= ?{queue}
                   ORDER BY r.created_at LIMIT ?)
                 UNION ALL
                 SELECT * FROM (SELECT r.id, r.tenant, r.created_at FROM runs r
                   LEFT JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND (l.run_id IS NULL OR l.expires_at < ?){queue}
                   ORDER BY r.created_at LIMIT ?))
               ORDER BY created_at LIMIT ?""",
            (*queue_params, wanted, now, *queue_params, wanted, now, *queue_params, wanted,
             wanted),
        ).fetchall()
        claimed: list[str] = []
        active: dict[str, int] = {}
        for run_id, tenant in rows:
            if len(claimed) >= limit:
                break
            if run_id in skip:  # the caller still executes it: never hand it out twice
                continue
            cap = (tenant_limits or {}).get(tenant)
            if cap is not None:
                if tenant not in active:
                    active[tenant] = self.count_active(tenant)
                if active[tenant] >= cap:
                    continue
                active[tenant] += 1
            self._fenced = {f for f in self._fenced if f[0] != run_id}
            epoch = self.conn.execute(
                # a waiting reason is stale once the run runs (a pending cancel keeps its own)
                "UPDATE runs SET status='running', wake_at=NULL, attempts=attempts+1, "
                "reason=CASE WHEN cancel_requested THEN reason ELSE NULL END, "
                "updated_at=? WHERE id=? RETURNING attempts",
                (now, run_id),
            ).fetchone()[0]
            self.conn.execute(
                "INSERT INTO leases (run_id, owner, expires_at, acquired_at, epoch) "
                "VALUES (?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET owner=excluded.owner, "
                "expires_at=excluded.expires_at, acquired_at=excluded.acquired_at, "
                "epoch=excluded.epoch",
                (run_id, owner, now + ttl, now, epoch),
            )
            claimed.append(run_id)
        return claimed

    def next_wake(
        self, now: float, *, owner: str | None = None, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> float | None:
        queue, queue_params = _queue_filter(tenants, agents)
        # one indexed read per way a run becomes claimable, as in `claim`; a lease held by
        # `owner` is the caller's own (renewed by its heartbeat), never a reason to wake
        row = self.conn.execute(
            f"""SELECT MIN(t) FROM (
                 SELECT MIN(r.wake_at) AS t FROM runs r
                   WHERE r.status = 'waiting' AND r.wake_at IS NOT NULL{queue}
                 UNION ALL
                 SELECT MIN(l.expires_at) FROM runs r JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND l.owner IS NOT ?{queue}
                 UNION ALL
                 SELECT ? WHERE EXISTS (SELECT 1 FROM runs r
                   WHERE r.status = 'queued'{queue})
                   OR EXISTS (SELECT 1 FROM runs r LEFT JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND l.run_id IS NULL{queue}))""",
            (*queue_params, owner, *queue_params, now, *queue_params, *queue_params),
        ).fetchone()
        return row[0] if row else None

    def renew(self, owner: str, run_ids: Sequence[str], ttl: float) -> list[str]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = self.conn.execute(
            f"UPDATE leases SET expires_at=? WHERE owner=? AND run_id IN ({marks}) "
            "RETURNING run_id",
            (self._now + ttl, owner, *run_ids),
        ).fetchall()
        return [r[0] for r in rows]

    def cancel_requested(self, run_ids: Sequence[str]) -> list[str]:
        flagged: set[str] = set()
        for start in range(0, len(run_ids), _IN_CHUNK):
            chunk = run_ids[start:start + _IN_CHUNK]
            flagged.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM runs WHERE cancel_requested <> 0 AND id IN "
                f"({','.join('?' * len(chunk))})", tuple(chunk)))
        return [run_id for run_id in run_ids if run_id in flagged]

    def count_active(self, tenant: str) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE tenant=? AND status='running'", (tenant,)
        ).fetchone()
        return int(row[0])

    def add_usage(self, tenant: str, day: str, amounts: dict[str, float]) -> None:
        self.conn.executemany(
            "INSERT INTO usage (tenant, day, metric, amount) VALUES (?,?,?,?) "
            "ON CONFLICT(tenant, day, metric) DO UPDATE SET amount = amount + excluded.amount",
            [(tenant, day, metric, float(amount)) for metric, amount in amounts.items()],
        )

    def budget_spend(self, scopes: Sequence[str]) -> dict[str, dict[str, float]]:
        marks = ",".join("?" * len(scopes))
        rows = self.conn.execute(
            f"SELECT scope, metric, amount FROM budget_spend WHERE scope IN ({marks})",
            tuple(scopes),
        ) if scopes else []
        out: dict[str, dict[str, float]] = {}
        for scope, metric, amount in rows:
            out.setdefault(scope, {})[metric] = amount
        return out

    def add_budget_spend(self, scopes: Sequence[str], amounts: dict[str, float]) -> None:
        self.conn.executemany(
            "INSERT INTO budget_spend (scope, metric, amount) VALUES (?,?,?) "
            "ON CONFLICT(scope, metric) DO UPDATE SET amount = amount + excluded.amount",
            [(scope, metric, float(amount)) for scope in scopes
             for metric, amount in amounts.items()],
        )

    def hold_budget(self, run_id: str, key: str) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO budget_holds (run_id, key) VALUES (?,?)", (run_id, key))
        return cur.rowcount == 1

    def release_budget_hold(self, run_id: str, key: str) -> bool:
        cur = self.conn.execute(
            "DELETE FROM budget_holds WHERE run_id=? AND key=?", (run_id, key))
        return cur.rowcount == 1

    def put_artifact(self, digest: str, data: bytes) -> None:
        # put again: its time is renewed, so that a sweep (`Tether.prune`) spares it
        self.conn.execute(
            "INSERT INTO artifacts (digest, size, data, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
            (digest, len(data), data, self._now),
        )

    def mentioned_artifacts(self, digests: Collection[str], *, since: float | None = None
                            ) -> set[str]:
        return mentioned(lambda sql, params: self.conn.execute(sql, params).fetchall(),
                         digests, since=since, find=SQLITE_FIND)

    def delete_artifacts(self, digests: Collection[str], *, created_before: float) -> int:
        ids = sorted(digests)
        deleted = 0
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            deleted += self.conn.execute(
                f"DELETE FROM artifacts WHERE digest IN ({','.join('?' * len(chunk))}) "
                "AND created_at < ?", (*chunk, created_before)).rowcount
        return deleted

    def tree(self, run_id: str) -> list[tuple[str, str, str | None]]:
        # SQLite's one write lock already keeps every other writer out until the commit
        rows = self.conn.execute(
            """WITH RECURSIVE tree(id) AS (
                   SELECT id FROM runs WHERE id=?
                   UNION ALL SELECT r.id FROM runs r JOIN tree t ON r.parent_id = t.id)
               SELECT id, status, parent_id FROM runs WHERE id IN (SELECT id FROM tree)""",
            (run_id,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        ids = list(run_ids)
        events = 0
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            events += self.conn.execute(
                f"DELETE FROM events WHERE run_id IN ({marks})", chunk).rowcount
            for table, column in _KEPT_FOR_A_RUN:
                self.conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        return events

    def mark_spans_exported(self, marks: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO span_exports (run_id, seq, updated_at) VALUES (?,?,?) "
            "ON CONFLICT(run_id) DO UPDATE SET seq = max(seq, excluded.seq), "
            "updated_at = excluded.updated_at",
            [(run_id, int(seq), self._now) for run_id, seq in marks.items()])

    # -- the server's API keys and audit log (tether.server; rows as tuples, read in column order)
    def insert_api_key(self, key_id: str, digest: str, tenant: str, role: str, name: str) -> None:
        self.conn.execute(
            "INSERT INTO api_keys (id, hash, tenant, role, name, created_at) VALUES (?,?,?,?,?,?)",
            (key_id, digest, tenant, role, name, self._now))

    def api_keys(self, *, digest: str | None = None, tenant: str | None = None
                 ) -> list[tuple[Any, ...]]:
        """(id, tenant, role, name, created_at, revoked_at) rows, by hash or tenant or all."""
        where, params = ("WHERE hash=?", (digest,)) if digest is not None else (
            ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ()))
        return self.conn.execute(
            f"SELECT id, tenant, role, name, created_at, revoked_at FROM api_keys {where} "
            "ORDER BY created_at", params).fetchall()

    def revoke_api_key(self, key_id: str) -> bool:
        cur = self.conn.execute(
            "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
            (self._now, key_id))
        return cur.rowcount == 1

    def insert_audit(self, tenant: str, actor: str, action: str, run_id: str | None,
                     detail: Any) -> int:
        cur = self.conn.execute(
            "INSERT INTO audit (ts, tenant, actor, action, run_id, detail) VALUES (?,?,?,?,?,?)",
            (self._now, tenant, actor, action, run_id, dumps(detail)))
        return int(cur.lastrowid or 0)

    def audit(self, tenant: str, *, after_id: int = 0, limit: int = 100
              ) -> list[tuple[Any, ...]]:
        """(id, ts, tenant, actor, action, run_id, detail) rows of one tenant, oldest first."""
        rows = self.conn.execute(
            "SELECT id, ts, tenant, actor, action, run_id, detail FROM audit "
            "WHERE tenant=? AND id>? ORDER BY id LIMIT ?", (tenant, after_id, limit)).fetchall()
        return [(*r[:6], loads(r[6])) for r in rows]

