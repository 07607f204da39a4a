"""Plain records exchanged between the store and the runtime.

Kept free of behaviour so both backends (SQLite now, PostgreSQL later) produce exactly the same
objects and the runtime never sees a driver row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "halted"})
ALL_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled", "halted")


@dataclass(slots=True)
class RunRecord:
    id: str
    agent: str
    status: str
    input: Any
    tenant: str = "default"
    parent_id: str | None = None
    root_id: str = ""
    depth: int = 0
    spec_version: str | None = None
    result: Any = None
    error: str | None = None
    reason: str | None = None
    wake_at: float | None = None
    cancel_requested: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    attempts: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    #: in a listing (`Store.list_runs`): the values left out for their size ("input",
    #: "result"; `LISTED_VALUE_MAX`), None here; `get_run` reads them whole
    omitted: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(slots=True, frozen=True)
class Event:
    """One journal entry. `key` identifies the ctx operation that wrote it (None for run-level
    events); `data` is the decoded JSON payload."""

    run_id: str
    seq: int
    kind: str
    key: str | None
    name: str | None
    data: Any
    ts: float


@dataclass(slots=True, frozen=True)
class NewEvent:
    """An event as the runtime hands it to the store: the payload is already encoded JSON so the
    writer thread does no Python-object work while it holds the write lock."""

    seq: int
    kind: str
    key: str | None
    name: str | None
    data: bytes | None
    ts: float


@dataclass(slots=True, frozen=True)
class Signal:
    id: int
    run_id: str
    name: str
    payload: Any
    created_at: float
