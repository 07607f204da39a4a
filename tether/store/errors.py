"""Store errors: each says what is wrong with the database and what to do about it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for problems with the persistence layer."""


class SchemaTooNew(StoreError):
    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"database {path!r} was written by a newer Tether (schema version {found}; this Tether "
            f"supports up to {supported}). Upgrade Tether (pip install -U tether) to open it; "
            "nothing was changed."
        )
        self.found = found
        self.supported = supported


class StoreCorrupt(StoreError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path!r} is not a readable Tether database ({detail}). Point --db/TETHER_DB at the "
            "right file, or restore it from a backup; Tether did not modify it."
        )


class JournalCorrupt(StoreError):
    """Part of a run's record (an event of its journal, its input, result, options or flags)
    cannot be read back: its data is not the JSON Tether wrote, so the database was changed
    outside Tether. Nothing can execute (or replay) the run until it is repaired; nothing else
    need stop for it."""

    def __init__(self, where: str, run_id: str, part: str, detail: str) -> None:
        place = f" in {where!r}" if where else ""
        super().__init__(
            f"{part} of run {run_id}{place} cannot be read: it is not valid JSON ({detail}). "
            "The database was changed outside Tether: restore it from a backup, or correct "
            "that row; the run cannot be executed until then")
        self.run_id = run_id


class StoreMissing(StoreError):
    """A read-only use named a database that does not exist: creating an empty one would hide
    the typo behind "no runs"."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"database {path!r} does not exist; nothing was created. Check --db/TETHER_DB (or "
            "run from the directory holding .tether/); `tether run` creates a database."
        )
        self.path = path


class StoreUnavailable(StoreError):
    """The store could not take a write now and applied none of it: the disk is full, an I/O
    error, the database stayed locked, the server cannot be reached or is short of resources.

    Why its own class: it says nothing about the write itself, so trying the same write again
    later can work, and a run whose write met it was not wrong: a worker waits for the store
    instead of failing the run (`GroupCommitter`). Every other `StoreError` from a write is
    about the write (or its outcome is unknown: a connection lost after its COMMIT was sent)."""


class StoreOutcomeUnknown(StoreError):
    """The connection was lost after the write's COMMIT was sent: it may or may not have been
    applied. Nothing can tell but reading the store again, so a worker stops the run's execution
    (its journal, read at resume, says what was written) instead of failing the run or trying
    the write again."""


class StoreLocked(StoreUnavailable):
    def __init__(self, path: str, waited: float) -> None:
        super().__init__(
            f"database {path!r} stayed locked by another process for {waited:g}s. Another "
            "program holds a write transaction open (a crashed editor, `sqlite3` shell, or a stuck "
            "process); close it and retry."
        )


class LeaseLost(StoreError):
    """The worker no longer holds the run's lease: another worker took it over, so this one must
    stop writing to the run immediately (fencing)."""

    def __init__(self, run_id: str, owner: str, holder: str | None) -> None:
        who = f"worker {holder!r}" if holder else "nobody"
        super().__init__(
            f"worker {owner!r} lost the lease on run {run_id!r} (now held by {who}); "
            "it stops executing the run"
        )
        self.run_id = run_id
