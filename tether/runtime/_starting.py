"""Starting a run for a caller in this process that waits for it (an MCP tool call) at once,
instead of at the serving loop's next claim. `Worker` inherits these; kept apart from
`worker.py`, which serves, claims and executes."""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial
from typing import Any

from tether.store import RunRecord, Store

from . import ops
from ._claiming import claim_runs
from .committer import GroupCommitter
from .errors import AgentNotFound
from .queues import WorkerQueue
from .refs import resolve_agent


class _CallerStarts:
    """`submit_and_claim` and `start_new`, over what the worker provides (declared here)."""

    _kick: asyncio.Event | None
    _active: dict[str, asyncio.Task[None]]
    store: Store
    concurrency: int
    owner: str
    lease_ttl: float
    tenant_limits: dict[str, int] | None
    queue: WorkerQueue

    @property
    def committer(self) -> GroupCommitter:
        raise NotImplementedError

    def kick(self) -> None:
        raise NotImplementedError

    def _start(self, run_id: str, epoch: int, *, new: RunRecord | None = None) -> None:
        raise NotImplementedError

    def _guards_for(self, run: RunRecord) -> Any:
        raise NotImplementedError

    async def submit_and_claim(self, run: RunRecord) -> bool:
        """Create `run` and, in the same durable transaction, claim the oldest runnable run for
        this serving worker — `run` itself unless older runs wait — and start executing what
        was claimed. True when `run` was claimed here; otherwise it is queued like any run
        (this worker is kicked; a worker that is full or not serving only creates it).

        For a caller that waits for the run it submits (an MCP tool call): submitting then
        claiming costs two commits in sequence (two fsyncs) plus a wake-up of the serving loop
        between them; here it is one commit."""
        if self._kick is None or self.concurrency - len(self._active) <= 0:
            await self.committer.run(ops.create_run(run))
            self.kick()
            return False
        create = ops.create_run(run)
        claim = partial(claim_runs, owner=self.owner, limit=1, ttl=self.lease_ttl,
                        tenant_limits=self.tenant_limits, active=list(self._active),
                        queue=self.queue)

        def op(tx: Any) -> list[tuple[str, int]]:
            create(tx)
            return claim(tx)[0]

        claimed: list[tuple[str, int]] = await self.committer.run(op)
        for run_id, epoch in claimed:
            self._start(run_id, epoch)
        if any(run_id == run.id for run_id, _ in claimed):
            return True
        self.kick()
        return False

    def start_new(self, run: RunRecord) -> bool:
        """Execute `run`, a run not yet in the store, here and now, created already claimed by
        this worker; its creation is written with its first write (`Context.provisional`: a
        one-step run is one commit). For a caller in this process that waits for the run (an
        MCP tool call): should this process die first, run and caller are lost together.

        False, with nothing done, when this worker cannot take it so: not serving, full, the
        run's tenant is limited (the limit counts runs in the store), the run is outside this
        worker's queue, or its guards or agent cannot be loaded here (the usual path records
        why). The caller then submits it (`submit_and_claim`)."""
        if self._kick is None or len(self._active) >= self.concurrency:
            return False
        if run.status != "queued" or run.parent_id is not None or run.id in self._active:
            return False
        if self.tenant_limits and run.tenant in self.tenant_limits:
            return False
        if not self.queue.everything and (
                (self.queue.tenants is not None and run.tenant not in self.queue.tenants)
                or (self.queue.agents is not None and run.agent not in self.queue.agents)):
            return False
        try:
            self._guards_for(run)
            resolve_agent(run.agent)
        except AgentNotFound:
            return False
        now = self.store.now()
        claimed = dataclasses.replace(run, status="running", attempts=1,
                                      root_id=run.root_id or run.id,
                                      created_at=run.created_at or now,
                                      updated_at=run.updated_at or now)
        self._start(run.id, 1, new=claimed)
        return True
