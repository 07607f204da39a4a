"""SQLite helpers of the Tether side: an instrumented store (commit timing, another
`synchronous` for diagnosis), a file's size after a WAL checkpoint, the `synchronous` Tether
opens a file with."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tether.store import SQLiteStore


def wal_checkpointed_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


class DiagStore(SQLiteStore):
    """Tether's SQLite store with commit timing (wall and committer-thread CPU per transaction)
    and, for diagnosis only, another `PRAGMA synchronous`. Behaviour is otherwise unchanged."""

    def __init__(self, path: Path, synchronous: str | None = None) -> None:
        self.synchronous = synchronous
        self.commits = 0
        self.inline_commits = 0
        self.commit_wall = 0.0
        self.commit_cpu = 0.0
        super().__init__(path)

    def _open(self) -> sqlite3.Connection:
        conn = super()._open()
        if self.synchronous:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    def write_batch(self, ops: Any, *, wait: bool = True) -> list[tuple[bool, Any]] | None:
        w, c = time.perf_counter(), time.thread_time()
        result = super().write_batch(ops, wait=wait)
        if result is not None:
            self.commits += 1
            self.inline_commits += not wait
            self.commit_wall += time.perf_counter() - w
            self.commit_cpu += time.thread_time() - c
        return result


assert hasattr(SQLiteStore, "_open"), "SQLiteStore._open moved: update DiagStore"


def synchronous_of(path: Path) -> int:
    # Tether sets it per connection; read it the way Tether's store opens the file
    store = SQLiteStore(path)
    try:
        return int(store._conn().execute("PRAGMA synchronous").fetchone()[0])
    finally:
        store.close()
