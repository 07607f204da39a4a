"""Workers: claim runnable runs under a lease, execute them by replay, release them.

A worker holds a run only while it makes progress. A run that waits (timer, signal, child,
human decision) is written back as a row and the worker moves on. Leases are renewed by a
heartbeat; a worker that dies stops renewing, its leases expire, and any other worker takes the
runs over. Every write a worker makes is fenced by its lease, so a worker that lost a run (paused
too long, partitioned) cannot corrupt the new owner's journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from tether.store import (
    JournalCorrupt,
    LeaseLost,
    RunRecord,
    Store,
    StoreOutcomeUnknown,
    StoreUnavailable,
    dumps,
)

from . import ops
from ._claiming import ClaimRetry, claim_runs, idle_wait, listen_for_work
from ._health import LoopPulse, WorkerHealth, outage_state
from ._heartbeat import _Heartbeat, renewal_outage
from ._refusals import _Refusals
from ._starting import _CallerStarts
from .committer import GroupCommitter
from .context import Context, _Scope, _scope
from .errors import (
    ERROR_TEXT_MAX,
    AgentNotFound,
    Drain,
    InDoubt,
    NonDeterminismError,
    NotSerializable,
    RunHalted,
    Suspend,
    clipped,
)
from .executors import Executor
from .interceptors import Interceptor
from .queues import WorkerQueue
from .refs import resolve_agent, resolve_guards
from .retry import replayable

log = logging.getLogger("tether.worker")
#: what a run's own write may meet that is not the run's fault: its execution stops (nothing
#: more is written for it) and the run is resumed from its journal, never failed for it
_STOPS_THE_EXECUTION = (LeaseLost, StoreUnavailable, StoreOutcomeUnknown)


# A run created in memory (`start_new`) is written by its first write, or after this long at
# the latest: a one-step call is one commit, and a slow one still shows in the store.
UNWRITTEN_AT_MOST_S = 0.5


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker(_CallerStarts, _Heartbeat, _Refusals):
    def __init__(
        self,
        store: Store,
        *,
        owner: str | None = None,
        concurrency: int = 256,
        lease_ttl: float = 30.0,
        poll_interval: float = 0.2,
        interceptors: Sequence[Interceptor] | Callable[[RunRecord], Sequence[Interceptor]] = (),
        max_depth: int | None = None,
        tenant_limits: dict[str, int] | None = None,
        committer: GroupCommitter | None = None,
        drain_timeout: float = 10.0,
        inline_commits: bool = True,
        guards: str | object | None = None,
        guards_retry_s: float = 60.0,
        executor: Executor | None = None,
        tenants: Iterable[str] | str | None = None,
        agents: Iterable[str | Callable[..., Any]] | str | Callable[..., Any] | None = None,
    ) -> None:
        """`guards`: the deployment's guards, for runs that declare none (a run's own declared
        `guards` reference always wins). A run whose declared guards this worker cannot load is
        not executed: it waits, with the reason, and is tried again after `guards_retry_s`.

        `tenants`, `agents`: this worker's queue (see `WorkerQueue`): it claims only runs of
        these tenants, of trees whose root runs one of these agents (None: every one).
        `tenant_limits` (tenant -> most runs executing at once) count every worker on the
        database, not only this one."""
        if not lease_ttl > 0:  # a lease expired at once would hand every run to every worker
            raise ValueError(f"lease_ttl must be more than 0 seconds, not {lease_ttl!r}")
        self.store = store
        self.owner = owner or default_owner()
        self._renewal_outage = renewal_outage(self.owner)
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.interceptors = interceptors
        self.max_depth = max_depth
        self.tenant_limits = tenant_limits
        self.queue = WorkerQueue.of(tenants, agents)
        self._own_committer = committer is None
        self._committer = committer
        self._active: dict[str, asyncio.Task[None]] = {}
        self._stop_reason: dict[str, str] = {}
        self._contexts: dict[str, Context] = {}
        self._unwritten: dict[str, RunRecord] = {}  # started by `start_new`, as started
        self.drain_timeout = drain_timeout
        # see GroupCommitter(inline=...): off when this loop also serves latency-sensitive work
        self.inline_commits = inline_commits
        self._kick: asyncio.Event | None = None
        self._pulse = LoopPulse()
        self._claims: ClaimRetry | None = None  # while serving
        self.executed = 0
        self.refused = 0  # of `executed`: taken, but nothing run (`_refuse`)
        self.guards = guards
        self.guards_retry_s = guards_retry_s
        #: where steps that declare `resources` execute (`RayExecutor`); None: in this process
        self.executor = executor
        self._loaded_guards: dict[str, Any] = {}
        #: called with each run id this worker claims (progress output: `tether worker -v`)
        self.on_claim: Callable[[str], None] | None = None
        #: more of the same, for layers above that follow runs (live trace export)
        self.claim_listeners: list[Callable[[str], None]] = []
        #: called with each run this worker ended, as committed (a caller waiting for the run
        #: in this process need not read it back: the MCP server's plain calls)
        self.end_listeners: list[Callable[[RunRecord], None]] = []

    @property
    def committer(self) -> GroupCommitter:
        if self._committer is None:
            self._committer = GroupCommitter(self.store, inline=self.inline_commits)
        return self._committer

    def started_as(self, run_id: str) -> RunRecord | None:
        """The record of a run this worker started with `start_new`, while it executes: it may
        not be in the store yet (for layers above that follow the runs a worker claims)."""
        return self._unwritten.get(run_id)

    @property
    def executing(self) -> list[str]:
        """The runs this worker executes now (claimed, not yet written back)."""
        return list(self._active)

    def health(self) -> WorkerHealth:
        """A snapshot of this worker's health (`WorkerHealth.problems` judges it); safe to
        call from any thread: what a health endpoint answers while the loop is blocked."""
        claims = self._claims
        claim_failures, claims_s = outage_state(claims.outage if claims else None)
        renewal_failures, renewals_s = outage_state(self._renewal_outage)
        return WorkerHealth(
            owner=self.owner, serving=claims is not None, loop_silent_s=self._pulse.silent_s(),
            claim_failures=claim_failures, claims_failing_s=claims_s, executed=self.executed,
            renewal_failures=renewal_failures, renewals_failing_s=renewals_s, refused=self.refused,
            executing=len(self._active), concurrency=self.concurrency)

    def kick(self) -> None:
        """Look for work now instead of at the next poll (something became runnable)."""
        if self._kick is not None:
            self._kick.set()

    # -- main loop -------------------------------------------------------------------------
    async def serve(
        self,
        *,
        stop: asyncio.Event | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Run until `stop` is set or `until()` is true. On exit, runs still executing are
        handed back to the queue untouched (their journals stay valid)."""
        self._kick = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(), name="tether-heartbeat")
        retry = self._claims = ClaimRetry(self.owner, self.poll_interval)
        self._pulse.start(asyncio.get_running_loop())
        unlisten = self._listen(asyncio.get_running_loop())
        listening = unlisten is not None
        try:
            while not (stop is not None and stop.is_set()):
                if until is not None and until():
                    break
                # cleared before the claim, not after it: a kick that arrives while the claim
                # awaits the committer (a run submitted meanwhile) must wake the wait below,
                # not be lost until the next poll
                self._kick.clear()
                free = self.concurrency - len(self._active)
                wake_at: float | None = None
                idle: float | None = None
                if free > 0:
                    claimed: list[tuple[str, int]]
                    try:
                        claimed, wake_at = await self.committer.run(
                            partial(claim_runs, owner=self.owner, limit=free, ttl=self.lease_ttl,
                                    tenant_limits=self.tenant_limits, active=list(self._active),
                                    queue=self.queue, next_wake=listening)
                        )
                    except Exception as exc:  # see ClaimRetry: serving goes on
                        idle = retry.failed(exc)
                        claimed = []
                    else:
                        retry.worked()
                    for run_id, epoch in claimed:
                        self._start(run_id, epoch)
                    if claimed and len(claimed) == free:
                        await asyncio.sleep(0)
                        continue
                waiters = [asyncio.ensure_future(self._kick.wait())]
                if stop is not None:
                    waiters.append(asyncio.ensure_future(stop.wait()))
                if idle is None:
                    idle = idle_wait(self.poll_interval, listening, free > 0, wake_at,
                                     now=self.store.now())
                _done, pending = await asyncio.wait(
                    waiters, timeout=idle, return_when=asyncio.FIRST_COMPLETED,
                )
                for w in pending:
                    w.cancel()
        finally:
            self._claims = None
            self._pulse.stop()
            if unlisten is not None:
                await asyncio.to_thread(unlisten)
            await self._drain()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            if self._own_committer and self._committer is not None:
                self._committer.close()
                self._committer = None

    async def _drain(self) -> None:
        """Shut down without harming runs: each stops before its next effect and goes back to
        the queue; steps already running get `drain_timeout` seconds to finish. Only then are
        stragglers interrupted (their running step is left in doubt, never marked failed)."""
        for ctx in self._contexts.values():
            ctx.stop_reason = ctx.stop_reason or "drain"
        tasks = list(self._active.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout)
            for run_id, task in list(self._active.items()):
                if task in pending:
                    self._stop_reason.setdefault(run_id, "shutdown")
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, run_id: str, epoch: int, *, new: RunRecord | None = None) -> None:
        # attached from the claim on, not from the task's first turn: a run that finds itself
        # alone commits inline, so every claimed run must already count
        self.committer.attach()
        task = asyncio.create_task(self._execute(run_id, epoch, new),
                                   name=f"tether-run-{run_id}")
        self._active[run_id] = task
        if new is not None:
            self._unwritten[run_id] = new
        if self.on_claim is not None:
            self.on_claim(run_id)
        for listener in self.claim_listeners:
            listener(run_id)

        def done(ended: asyncio.Task[None]) -> None:
            self.committer.detach()
            self._report_failure(run_id, ended)
            self._active.pop(run_id, None)
            self._unwritten.pop(run_id, None)
            self._stop_reason.pop(run_id, None)
            self._contexts.pop(run_id, None)
            self.kick()

        task.add_done_callback(done)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None] | None:
        return listen_for_work(self.store, loop, self.kick)

    def _stop(self, run_id: str, reason: str) -> None:
        task = self._active.get(run_id)
        if task is not None and not task.done():
            self._stop_reason[run_id] = reason
            ctx = self._contexts.get(run_id)
            if ctx is not None:
                ctx.stop_reason = reason
            task.cancel()

    def cancel_local(self, run_ids: Sequence[str]) -> None:
        """Stop runs this worker executes because a cancel was requested for them."""
        for run_id in run_ids:
            self._stop(run_id, "cancel")

    # -- executing one run -----------------------------------------------------------------
    def _interceptors_for(self, run: RunRecord) -> Sequence[Interceptor]:
        if callable(self.interceptors):
            return self.interceptors(run)
        return self.interceptors

    def _guards_for(self, run: RunRecord) -> Any:
        """The guards `run` executes under: its declared reference, else this worker's own."""
        ref = run.options.get("guards")
        declared = ref if isinstance(ref, str) else self.guards
        if not isinstance(declared, str):
            return declared
        if declared not in self._loaded_guards:  # one object per process: shared breakers
            self._loaded_guards[declared] = resolve_guards(declared)
        return self._loaded_guards[declared]

    async def _execute(self, run_id: str, epoch: int, new: RunRecord | None = None) -> None:
        _scope.set(_Scope(""))
        try:
            run = new if new is not None else self.store.get_run(run_id)
        except JournalCorrupt as exc:
            await self._refuse(run_id, epoch, f"cannot read the run: {exc}", "it waits",
                               readable=False)
            return
        if run is None:
            return
        deploy = "deploy a worker that can import it"
        try:
            guards = self._guards_for(run)
        except AgentNotFound as exc:
            what = f"guards {run.options.get('guards', self.guards)!r}"
            await self._refuse(run_id, epoch, f"cannot load the run's {what} ({exc})", deploy)
            return
        try:
            agent = resolve_agent(run.agent)
        except AgentNotFound as exc:
            await self._refuse(run_id, epoch,
                               f"cannot load the run's agent {run.agent!r} ({exc})", deploy)
            return
        try:  # a retried failure runs again
            events = [] if new is not None else replayable(self.store.load_events(run_id))
        except JournalCorrupt as exc:
            await self._refuse(run_id, epoch, f"cannot read the run's journal: {exc}",
                               "it waits")
            return
        interceptors = list(self._interceptors_for(run))
        if guards is not None:
            interceptors += list(guards.interceptors())
        ctx = Context(run, self.store, self.committer, self.owner, events,
                      interceptors=interceptors, max_depth=self.max_depth, epoch=epoch,
                      executor=self.executor, lease_ttl=self.lease_ttl)
        unwritten_limit: asyncio.TimerHandle | None = None
        if new is not None:
            ctx.begin_unwritten(ops.create_claimed(new, self.owner, self.lease_ttl),
                                ops.submitted(new))
            # a long step is not kept out of the store (and `tether runs`) for its whole length
            unwritten_limit = asyncio.get_running_loop().call_later(
                UNWRITTEN_AT_MOST_S, ctx.flush_pending)
        ctx.guards = guards
        self._contexts[run_id] = ctx
        first = not any(e.kind == "run_started" for e in events)
        ctx._append("run_started" if first else "run_resumed", None, None,
                    {"worker": self.owner, "attempt": run.attempts})
        try:
            if run.cancel_requested:
                # cancelled while no worker executed it (its worker died holding the lease):
                # only a live worker's heartbeat reads the flag, so nothing more of it may run
                reason = run.reason or "cancelled by request"
                await self._finish(ctx, "cancelled", reason=reason,
                                   event=("run_cancelled", {"reason": reason}))
                return
            await self._drive(ctx, run, agent)
        except LeaseLost:
            log.info("run %s: lease lost, leaving it to its new owner", run_id)
        finally:
            if unwritten_limit is not None:
                unwritten_limit.cancel()
            self.executed += 1

    async def _drive(self, ctx: Context, run: RunRecord, agent: Callable[..., Any]) -> None:
        run_id = run.id
        try:
            result = await agent(ctx, run.input)
            ctx.check_complete()
            try:
                dumps(result)
            except TypeError as exc:
                raise NotSerializable(f"the result of agent {run.agent}", str(exc)) from exc
        except Suspend as s:
            await self._commit(ctx, ops.suspend(
                run_id, self.owner, reason=s.reason, wake_at=s.wake_at, children=s.children,
                signals=s.signals, epoch=ctx.epoch))
        except InDoubt as d:
            options = dict(run.options)
            options["in_doubt"] = {"key": d.key, "step": d.step}
            await self._commit(ctx, ops.suspend(
                run_id, self.owner, reason=str(d), wake_at=None, children=(), signals=(),
                options=options, epoch=ctx.epoch))
        except Drain:
            await self._commit(ctx, ops.abandon(run_id, self.owner, ctx.epoch), retry=False)
        except RunHalted as h:
            await self._finish(ctx, "halted", reason=h.reason,
                               event=("run_halted", {"reason": h.reason, "details": h.details}))
        except asyncio.CancelledError:
            why = self._stop_reason.get(run_id, "shutdown")
            if why == "cancel":
                latest = self.store.get_run(run_id)
                reason = latest.reason if latest and latest.reason else "cancelled by request"
                await self._finish(ctx, "cancelled", reason=reason,
                                   event=("run_cancelled", {"reason": reason}))
            elif why == "shutdown":
                with contextlib.suppress(Exception):
                    await self._commit(ctx, ops.abandon(run_id, self.owner, ctx.epoch), retry=False)
            # "lease": another worker owns the run now; write nothing.
        except LeaseLost:
            raise
        except (NonDeterminismError, AgentNotFound) as exc:
            await self._finish(ctx, "failed", error=str(exc),
                               event=("run_failed", {"type": type(exc).__name__,
                                                     "message": str(exc)}))
        except Exception as exc:
            if isinstance(ctx._background_error, _STOPS_THE_EXECUTION):
                # the run did nothing wrong: it stops, and is resumed from its journal
                raise ctx._background_error from exc
            message = clipped(f"{type(exc).__name__}: {exc}")
            await self._finish(ctx, "failed", error=message, event=("run_failed", {
                "type": type(exc).__name__, "message": clipped(str(exc)),
                "traceback": clipped(traceback.format_exc(limit=20), 2 * ERROR_TEXT_MAX)}))
        else:
            await self._finish(ctx, "succeeded", result=result, event=("run_completed", None))

    async def _finish(self, ctx: Context, status: str, *, result: Any = None,
                      error: str | None = None, reason: str | None = None,
                      event: tuple[str, Any]) -> None:
        if isinstance(ctx._background_error, _STOPS_THE_EXECUTION):
            raise ctx._background_error  # its end cannot follow a write that is missing
        finish = ops.finish(
            ctx.run_id, self.owner, status, result=result, error=error, reason=reason,
            events=ctx.take_pending(*event), epoch=ctx.epoch)
        # with what the run still holds (and, unwritten, its creation): one op
        ended: RunRecord | None = await ctx.submit_last(finish)
        if ended is not None:
            for listener in self.end_listeners:
                listener(ended)

    async def _commit(self, ctx: Context, op: Callable[[Any], Any], *, retry: bool = True
                      ) -> Any:
        """A run-state write of the run's. `retry`: it waits out a store that refuses writes
        (a suspension must be written for the run to go on); handing the run back does not
        (any worker takes it up at lease expiry anyway, and a stopping worker must stop)."""
        ctx.flush_pending()  # the run's journal goes first, in the same order as written
        return await self.committer.run(op, retry=retry)
