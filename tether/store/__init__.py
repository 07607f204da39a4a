"""Persistence for runs, their journals, leases, signals and artifacts.

`open_store` picks a backend from a path or URL; everything else talks to the `Store` protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._artifact_refs import digests_in
from ._base import Store, Tx
from ._codec import dumps, loads
from ._migrations import LATEST_VERSION
from ._records import ALL_STATUSES, TERMINAL_STATUSES, Event, NewEvent, RunRecord, Signal
from ._report import store_report
from ._sqlite import SQLiteStore
from .errors import (
    JournalCorrupt,
    LeaseLost,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreOutcomeUnknown,
    StoreUnavailable,
)
from .shards import SHARDS_ENV, Shard, ShardConfigError, ShardedStores, ShardMap, root_key

DEFAULT_DB = Path(".tether") / "tether.db"


def default_db_path() -> str:
    return os.environ.get("TETHER_DB") or str(DEFAULT_DB)


def open_store(target: str | os.PathLike[str] | Store | None = None, *,
               must_exist: bool = False) -> Store:
    """Open a store from a file path, a `sqlite:///path` URL or a `postgresql://...` URL (the
    PostgreSQL store, `pip install tether[postgres]`). `None` means `$TETHER_DB` or
    `./.tether/tether.db`. `must_exist`: raise `StoreMissing` instead of creating the database
    (read-only uses)."""
    if target is None:
        target = default_db_path()
    if not isinstance(target, (str, os.PathLike)):
        return target
    text = os.fspath(target)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif text.startswith(("postgresql://", "postgres://")):
        return _open_postgres(text, must_exist=must_exist)
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"unsupported database URL scheme {scheme!r}; use a file path, sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        )
    return SQLiteStore(text, must_exist=must_exist)


def _open_postgres(url: str, *, must_exist: bool) -> Store:
    """The PostgreSQL store, imported only when asked for (psycopg is an optional extra)."""
    try:
        from ._postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"{url.split('://', 1)[0]}:// URLs need the PostgreSQL driver ({exc.name} is not "
            "installed): pip install 'tether[postgres]'") from exc
    return PostgresStore(url, must_exist=must_exist)


__all__ = [
    "ALL_STATUSES",
    "DEFAULT_DB",
    "LATEST_VERSION",
    "SHARDS_ENV",
    "TERMINAL_STATUSES",
    "Event",
    "JournalCorrupt",
    "LeaseLost",
    "NewEvent",
    "RunRecord",
    "SQLiteStore",
    "SchemaTooNew",
    "Shard",
    "ShardConfigError",
    "ShardMap",
    "ShardedStores",
    "Signal",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "StoreOutcomeUnknown",
    "StoreUnavailable",
    "Tx",
    "default_db_path",
    "digests_in",
    "dumps",
    "loads",
    "open_store",
    "root_key",
    "store_report",
]
