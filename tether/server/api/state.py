"""What the routes share: the library client, the key store, the agent catalogue, the approver
keys, the embedded worker, and the event loop they run on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from tether.guards.approvals import KeyRegistry, load_key_registry
from tether.runtime import Tether, Worker, resolve_guards
from tether.runtime.committer import GroupCommitter
from tether.server.keys import ApiKeys, Principal

from .config import AgentEntry, ServerConfig
from .locks import KeyedLocks
from .stream_limits import StreamSlots

MAX_KNOWN_KEYS = 10_000


@dataclass
class ServerState:
    config: ServerConfig
    tether: Tether
    keys: ApiKeys
    catalogue: dict[str, AgentEntry]
    approvers: KeyRegistry
    worker: Worker | None = None
    loop: asyncio.AbstractEventLoop | None = None
    #: the server's writes and key lookups, batched into shared transactions on one thread
    #: (the embedded worker's commits too): a thread pool of handlers contending for SQLite's
    #: write lock would wait in its busy handler's sleeps instead
    committer: GroupCommitter | None = None
    _guards: dict[str, Any] = field(default_factory=dict)
    #: keys already found valid, by digest: a route that re-checks its key inside its own
    #: write (submitting a run) need not wait for a lookup transaction first
    _known_keys: dict[str, Principal] = field(default_factory=dict)
    #: per run: one approval decision at a time (read-check-send must not interleave)
    deciding: KeyedLocks = field(default_factory=KeyedLocks)
    #: event streams open per key (bounded by `config.max_streams_per_key`)
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(0))

    @classmethod
    def build(cls, config: ServerConfig) -> ServerState:
        """Everything a deployment names is loaded now, so a typo stops the server at start,
        not a request later: agents, their guards and the approvers file."""
        from tether.runtime import resolve_agent

        tether = Tether(config.db)
        catalogue = config.catalogue()
        guards: dict[str, Any] = {}
        for ref in {e.guards for e in catalogue.values()} | {config.guards}:
            if ref:
                guards[ref] = resolve_guards(ref)
        for entry in catalogue.values():
            resolve_agent(entry.ref)
        registry = (load_key_registry(config.approvers) if config.approvers
                    else KeyRegistry())
        for g in guards.values():
            known: KeyRegistry | None = getattr(getattr(g, "config", None), "approvers", None)
            for name in known.approvers() if known is not None else ():
                if name not in registry:
                    registry.register(name, known.get(name))  # type: ignore[union-attr]
        return cls(config, tether, ApiKeys(tether.store), catalogue, registry, _guards=guards,
                   streams=StreamSlots(config.max_streams_per_key))

    def guards_of(self, entry: AgentEntry) -> str | None:
        return entry.guards or self.config.guards

    def loaded_guards(self) -> Sequence[Any]:
        return list(self._guards.values())

    def signing_key_path(self, approver: str) -> Path | None:
        if not self.config.signing_keys:
            return None
        path = Path(self.config.signing_keys) / f"{approver}.key"
        return path if path.is_file() else None

    # -- keys seen before ----------------------------------------------------------------
    def known_key(self, digest: str) -> Principal | None:
        return self._known_keys.get(digest)

    def remember_key(self, digest: str, principal: Principal) -> None:
        if len(self._known_keys) >= MAX_KNOWN_KEYS:  # a flood of keys: start over
            self._known_keys.clear()
        self._known_keys[digest] = principal

    def forget_key(self, digest: str) -> None:
        self._known_keys.pop(digest, None)

    # -- telling the embedded worker, from any thread ------------------------------------
    def kick(self) -> None:
        """Something became runnable: the embedded worker looks now, not at its next poll."""
        if self.worker is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.worker.kick)

    def cancelled(self, run_ids: Sequence[str]) -> None:
        if self.worker is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.worker.cancel_local, list(run_ids))


async def commit(state: ServerState, op: Any) -> Any:
    """Run a store operation in the server's next shared transaction (from the event loop)."""
    if state.committer is None:
        raise RuntimeError("the server is not started (its lifespan has not run)")
    return await state.committer.run(op)


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.tether
    return state
