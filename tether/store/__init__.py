"""Persistence for runs, their journals, leases, signals and artifacts.

`open_store` picks a backend from a path or URL; everything else talks to the `Store` protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._base import Store, Tx
from ._codec import dumps, loads
from ._migrations import LATEST_VERSION
from ._records import ALL_STATUSES, TERMINAL_STATUSES, Event, NewEvent, RunRecord, Signal
from ._sqlite import SQLiteStore
from .errors import (
    LeaseLost,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreMissing,
)

DEFAULT_DB = Path(".tether") / "tether.db"


def default_db_path() -> str:
    return os.environ.get("TETHER_DB") or str(DEFAULT_DB)


def open_store(target: str | os.PathLike[str] | Store | None = None, *,
               must_exist: bool = False) -> Store:
    """Open a store from a file path or a `sqlite:///path` URL (PostgreSQL URLs come with the
    scale-out backend). `None` means `$TETHER_DB` or `./.tether/tether.db`. `must_exist`: raise
    `StoreMissing` instead of creating the database (read-only uses)."""
    if target is None:
        target = default_db_path()
    if not isinstance(target, (str, os.PathLike)):
        return target
    text = os.fspath(target)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"unsupported database URL scheme {scheme!r}; use a file path or sqlite:///PATH"
        )
    return SQLiteStore(text, must_exist=must_exist)


__all__ = [
    "ALL_STATUSES",
    "DEFAULT_DB",
    "LATEST_VERSION",
    "TERMINAL_STATUSES",
    "Event",
    "LeaseLost",
    "NewEvent",
    "RunRecord",
    "SQLiteStore",
    "SchemaTooNew",
    "Signal",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "Tx",
    "default_db_path",
    "dumps",
    "loads",
    "open_store",
]
