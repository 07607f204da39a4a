"""How a worker claims runs on PostgreSQL: the `Tx` methods `claim` and `next_wake`, apart from
the other primitives in `_postgres_tx.py` because they are the one place where workers on many
hosts compete for the same rows (SKIP LOCKED reads, a fresh-snapshot re-check, a tenant's
advisory lock) and the place a backlog's size shows first."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import psycopg

# what makes a run claimable (queued, due, or abandoned by a dead worker); two %s: now, now
_RUNNABLE = """r.status = 'queued'
      OR (r.status = 'waiting' AND r.wake_at IS NOT NULL AND r.wake_at <= %s)
      OR (r.status = 'running' AND (l.run_id IS NULL OR l.expires_at < %s))"""


def _queue_filter(tenants: Collection[str] | None, agents: Collection[str] | None
                  ) -> tuple[str, list[list[str]]]:
    """The worker's queue (Tx.claim) as SQL to append to a WHERE on `runs r`, with its
    parameters; an empty list serves nothing (= ANY('{}') is false)."""
    queue, queue_params = "", list[list[str]]()
    for column, values in (("r.tenant", tenants), ("r.root_agent", agents)):
        if values is not None:
            queue += f" AND {column} = ANY(%s)"
            queue_params.append(sorted(set(values)))
    return queue, queue_params


class _Claims:
    """`claim` and `next_wake`, mixed into `_PostgresTx` (which provides what is declared
    here)."""

    conn: psycopg.Connection[Any]
    _now: float
    _fenced: set[tuple[str, str, int | None]]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def count_active(self, tenant: str) -> int:
        raise NotImplementedError

    def claim(
        self, owner: str, limit: int, ttl: float, tenant_limits: dict[str, int] | None = None,
        exclude: Sequence[str] = (), *, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> list[str]:
        now = self._now
        skip = set(exclude)
        queue, queue_params = _queue_filter(tenants, agents)
        wanted = (max(limit * 4, limit) if tenant_limits else limit) + len(skip)
        # One ordered, limited, locking read per way a run becomes claimable, each on an index
        # (queued: by status or queue, then created_at; due timers: the wake_at index; abandoned:
        # the running runs, as many as workers execute), merged oldest first. A single query with
        # the three ORed scanned and sorted every run: 0.47 s per claim behind 100k queued runs.
        # Up to 3 x `wanted` rows stay locked to commit; other workers skip them meanwhile.
        locked = self._all(
            f"""WITH queued AS (
                   SELECT r.id, r.tenant, r.created_at FROM runs r
                   WHERE r.status = 'queued'{queue} ORDER BY r.created_at LIMIT %s
                   FOR UPDATE OF r SKIP LOCKED),
               due AS (
                   SELECT r.id, r.tenant, r.created_at FROM runs r
                   WHERE r.status = 'waiting' AND r.wake_at IS NOT NULL AND r.wake_at <= %s{queue}
                   ORDER BY r.created_at LIMIT %s FOR UPDATE OF r SKIP LOCKED),
               abandoned AS (
                   SELECT r.id, r.tenant, r.created_at FROM runs r
                   LEFT JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND (l.run_id IS NULL OR l.expires_at < %s){queue}
                   ORDER BY r.created_at LIMIT %s FOR UPDATE OF r SKIP LOCKED)
               SELECT id, tenant FROM (SELECT * FROM queued UNION ALL SELECT * FROM due
                                       UNION ALL SELECT * FROM abandoned) c
               ORDER BY created_at LIMIT %s""",
            (*queue_params, wanted, now, *queue_params, wanted, now, *queue_params, wanted,
             wanted),
        )
        # A row another worker claimed and committed while this statement ran is locked anyway:
        # the re-check PostgreSQL does on a changed row still sees the lease as it was when the
        # statement began. Ask again in a new statement (a fresh snapshot); the rows stay
        # locked by us from here to commit, so the answer holds.
        fresh = {r[0] for r in self._all(
            f"""SELECT r.id FROM runs r LEFT JOIN leases l ON l.run_id = r.id
               WHERE r.id = ANY(%s) AND ({_RUNNABLE})""",
            ([r[0] for r in locked], now, now))} if locked else set()
        rows = [r for r in locked if r[0] in fresh]
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
                    # other workers count under the same lock: the last slot is taken once
                    self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                      ("tether-tenant:" + tenant,))
                    active[tenant] = self.count_active(tenant)
                if active[tenant] >= cap:
                    continue
                active[tenant] += 1
            claimed.append(run_id)
        if not claimed:
            return []
        taken = set(claimed)
        self._fenced = {f for f in self._fenced if f[0] not in taken}
        # one statement for every claimed run, not two per run: a worker with room for
        # hundreds of runs claims them in two round trips
        epochs = dict(self._all(
            # a waiting reason is stale once the run runs (a pending cancel keeps its own)
            "UPDATE runs SET status='running', wake_at=NULL, attempts=attempts+1, "
            "reason=CASE WHEN cancel_requested <> 0 THEN reason ELSE NULL END, "
            "updated_at=%s WHERE id = ANY(%s) RETURNING id, attempts",
            (now, claimed)))
        self.conn.execute(
            "INSERT INTO leases (run_id, owner, expires_at, acquired_at, epoch) "
            "SELECT u.id, %s, %s, %s, u.epoch FROM unnest(%s::text[], %s::int[]) AS u(id, epoch) "
            "ON CONFLICT(run_id) DO UPDATE SET owner=excluded.owner, "
            "expires_at=excluded.expires_at, acquired_at=excluded.acquired_at, "
            "epoch=excluded.epoch",
            (owner, now + ttl, now, claimed, [epochs[r] for r in claimed]))
        return claimed

    def next_wake(
        self, now: float, *, owner: str | None = None, tenants: Collection[str] | None = None,
        agents: Collection[str] | None = None,
    ) -> float | None:
        queue, queue_params = _queue_filter(tenants, agents)
        # one indexed read per way a run becomes claimable, as in `claim`; a lease held by
        # `owner` is the caller's own (renewed by its heartbeat), never a reason to wake
        row = self._one(
            f"""SELECT MIN(t) FROM (
                 SELECT MIN(r.wake_at) AS t FROM runs r
                   WHERE r.status = 'waiting' AND r.wake_at IS NOT NULL{queue}
                 UNION ALL
                 SELECT MIN(l.expires_at) FROM runs r JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND l.owner IS DISTINCT FROM %s{queue}
                 UNION ALL
                 SELECT %s::double precision WHERE EXISTS (SELECT 1 FROM runs r
                   WHERE r.status = 'queued'{queue})
                   OR EXISTS (SELECT 1 FROM runs r LEFT JOIN leases l ON l.run_id = r.id
                   WHERE r.status = 'running' AND l.run_id IS NULL{queue})) w""",
            (*queue_params, owner, *queue_params, now, *queue_params, *queue_params),
        )
        return float(row[0]) if row and row[0] is not None else None
