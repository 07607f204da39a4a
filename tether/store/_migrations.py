"""Versioned schema migrations. Append a new entry to add a version; never edit an old one.

Statements are split on ";", so comments inside a migration must not contain one.
A database whose version is newer than the last entry was written by a newer Tether and is refused
(see `SchemaTooNew`) rather than risk writing rows an older release does not understand.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL DEFAULT 'default',
            agent TEXT NOT NULL,
            spec_version TEXT,
            input BLOB,
            status TEXT NOT NULL,
            result BLOB,
            error TEXT,
            reason TEXT,
            parent_id TEXT,
            root_id TEXT NOT NULL,
            depth INTEGER NOT NULL DEFAULT 0,
            wake_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            options BLOB
        );
        CREATE INDEX runs_by_status ON runs(status, created_at);
        CREATE INDEX runs_by_wake ON runs(wake_at) WHERE status = 'waiting';
        CREATE INDEX runs_by_parent ON runs(parent_id);
        CREATE INDEX runs_by_tenant ON runs(tenant, status);

        CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            key TEXT,
            name TEXT,
            data BLOB,
            ts REAL NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL,
            acquired_at REAL NOT NULL
        );
        CREATE INDEX leases_by_owner ON leases(owner);

        CREATE TABLE artifacts (
            digest TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        );

        CREATE TABLE signals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            name TEXT NOT NULL,
            payload BLOB,
            created_at REAL NOT NULL,
            consumed_by TEXT
        );
        CREATE INDEX signals_pending ON signals(run_id, name) WHERE consumed_by IS NULL;
        """,
    ),
]

MIGRATIONS.append(
    (
        2,
        """
        ALTER TABLE runs ADD COLUMN flags BLOB;

        -- events become a rowid table: a WITHOUT ROWID row keeps only ~1 KB inline, so every
        -- 1 KB message spilled to an overflow page of its own (85% empty), while rowid rows stay
        -- inline up to ~4 KB. (run_id, seq) stays unique through its own index.
        CREATE TABLE events_v2 (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            key TEXT,
            name TEXT,
            data BLOB,
            ts REAL NOT NULL
        );
        INSERT INTO events_v2 (run_id, seq, kind, key, name, data, ts)
            SELECT run_id, seq, kind, key, name, data, ts FROM events ORDER BY run_id, seq;
        DROP TABLE events;
        ALTER TABLE events_v2 RENAME TO events;
        CREATE UNIQUE INDEX events_by_run ON events(run_id, seq);
        CREATE TABLE usage (
            tenant TEXT NOT NULL,
            day TEXT NOT NULL,
            metric TEXT NOT NULL,
            amount REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, day, metric)
        ) WITHOUT ROWID;
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        """
        -- A fencing epoch per claim (the run's attempt number): a worker whose lease lapsed
        -- and whose run was claimed again, even by itself, can no longer write.
        ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        """
        -- Budgets of run trees (tether.guards): what each budget scope (a run and all its
        -- descendants) has reserved, per metric, checked and added to in one transaction so
        -- that runs in other processes cannot pass the same check, and which effects hold a
        -- reservation (an effect run again after a crash is counted once).
        CREATE TABLE budget_spend (
            scope TEXT NOT NULL,
            metric TEXT NOT NULL,
            amount REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, metric)
        ) WITHOUT ROWID;
        CREATE TABLE budget_holds (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        """
        -- The server (tether.server): API keys per tenant, stored as the sha256 of the key
        -- (never the key itself), and the audit log of what people did to runs through it
        -- (approvals, denials, cancels): who, when, what.
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            role TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX api_keys_by_tenant ON api_keys(tenant);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            tenant TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            run_id TEXT,
            detail BLOB
        );
        CREATE INDEX audit_by_tenant ON audit(tenant, id);
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        """
        -- Live trace export (tether.observe): per run, the journal position up to which its
        -- spans reached a collector. A worker that takes over a crashed run sends what the dead
        -- one had not sent yet, and nothing it had.
        CREATE TABLE span_exports (
            run_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        """
        -- Worker queues (tether/runtime/queues.py): a run tree is served by the workers of its
        -- root's agent, so each run carries that agent, and a queue's claim finds its runs by
        -- index instead of reading every runnable run. The tenant index gains created_at, the
        -- claim's order, and replaces the one without it.
        ALTER TABLE runs ADD COLUMN root_agent TEXT;
        UPDATE runs SET root_agent = (SELECT p.agent FROM runs p WHERE p.id = runs.root_id);
        CREATE INDEX runs_by_root_agent ON runs(root_agent, status, created_at);
        CREATE INDEX runs_by_tenant_status ON runs(tenant, status, created_at);
        DROP INDEX runs_by_tenant;
        """,
    )
)

MIGRATIONS.append(
    (
        8,
        """
        -- Deleting finished runs (Tether.delete, Tether.prune): a run's signals, consumed or
        -- not, are found by run, not only the pending ones.
        CREATE INDEX signals_by_run ON signals(run_id);
        """,
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]
