"""Following the runs a client's workers execute: the one mechanism live trace export
(`otel.LiveExport`) and live metrics (`_kpi_live.LiveMetrics`) share.

A follower hooks every worker the client has or creates (`Tether.worker_listeners`), hears each
run a worker claims (`Worker.claim_listeners`) and, while it follows any, looks at them every
`poll` seconds on the worker's event loop (`tick`), told which runs a worker still executes (a
run no worker executes any more gets its last look). `close()` takes that last look at every
run and unhooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tether.runtime import Tether, Worker


class RunFollower:
    """Base of a follower: subclasses say what following a run means (`follow`, `following`,
    `tick`), and what else to unhook when closing (`detached`)."""

    def __init__(self, tether: Tether, *, poll: float, name: str) -> None:
        self._tether = tether
        self.poll_s = poll
        self.closed = False
        self._name = name
        self._workers: list[Worker] = []
        self._hooks: list[tuple[Worker, Callable[[str], None]]] = []
        self._task: asyncio.Task[None] | None = None
        tether.worker_listeners.append(self.attach)
        for worker in list(tether._workers):
            self.attach(worker)

    def attach(self, worker: Worker) -> None:
        """Follow the runs `worker` claims (done for every worker the client creates)."""
        self._workers.append(worker)

        def claimed(run_id: str) -> None:
            self._claimed(worker, run_id)

        self._hooks.append((worker, claimed))
        worker.claim_listeners.append(claimed)

    def detached(self) -> None:
        """Every worker was unhooked (nothing more by default)."""

    def follow(self, run_id: str, worker: Worker) -> None:
        """Follow `run_id`, which `worker` just claimed (on the worker's event loop)."""
        raise NotImplementedError

    def following(self) -> bool:
        """Whether any run is followed (the loop stops when none is)."""
        raise NotImplementedError

    def tick(self, executing: set[str] | None = None) -> None:
        raise NotImplementedError

    def executing(self) -> set[str]:
        """The runs a hooked worker executes now."""
        return {r for w in self._workers for r in w.executing}

    def _claimed(self, worker: Worker, run_id: str) -> None:
        if self.closed:
            return
        self.follow(run_id, worker)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self._name)

    async def _loop(self) -> None:
        while self.following() and not self.closed:
            await asyncio.sleep(self.poll_s)
            self.tick()

    def unhook(self) -> None:
        """The last look at every followed run, then no more (closing's first half)."""
        if self.closed:
            return
        self.tick(executing=set())
        self.closed = True
        if self.attach in self._tether.worker_listeners:
            self._tether.worker_listeners.remove(self.attach)
        for worker, claimed in self._hooks:
            if claimed in worker.claim_listeners:
                worker.claim_listeners.remove(claimed)
        self.detached()
