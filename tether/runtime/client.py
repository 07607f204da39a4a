"""`Tether`: the library entry point — submit, drive, inspect and steer runs. The CLI and the
server are thin layers over this class."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from tether.store import Event, RunRecord, Store, StoreUnavailable, Tx, dumps, open_store
from tether.store import vocabulary as v

from . import ops
from ._retention import Deleted, delete_tree, prune
from .committer import GroupCommitter
from .context import Context, checked_max_depth
from .errors import InvalidInput, RunNotFound
from .interceptors import Interceptor
from .refs import check_agent, guards_ref, portable_ref, resolve_agent
from .retry import RetryPlan, plan_retry, replayable
from .tenants import check_tenant
from .worker import Worker

_NO_INPUT: Any = object()  # `submit(agent)`: no input given (None is a valid JSON input)


class AmbiguousRunId(InvalidInput):
    """A run-id prefix matches more than one run: acting on one of them would be a guess."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"run id prefix {prefix!r} is ambiguous: it matches {', '.join(candidates)}"
            f"{' and more' if len(candidates) >= _PREFIX_CANDIDATES else ''}; "
            "give more characters"
        )
        self.prefix = prefix
        self.candidates = list(candidates)


_PREFIX_CANDIDATES = 10  # how many matches an ambiguity error lists


class NoRunWithPrefix(RunNotFound):
    """No run id is, or starts with, what was given."""

    def __init__(self, prefix: str, where: str = "") -> None:
        super().__init__(prefix, where)
        loc = f" in {where}" if where else ""
        self.args = (f"no run with id {prefix!r} (nor one starting with it){loc}; list runs "
                     "with `tether runs` (or check --db/TETHER_DB)",)


def new_run_id() -> str:
    return "r" + uuid.uuid4().hex[:15]


class IdempotencyConflict(InvalidInput):
    """An idempotency key already used for a different request: answering with the first run
    would hide that the second one was never queued."""


def idempotent_run_id(tenant: str, key: str) -> str:
    """The run id a (tenant, idempotency key) pair always gets: the store's primary key then
    makes "at most one run per key" atomic, across processes and server restarts."""
    if not key or len(key) > 255:
        raise InvalidInput("an idempotency key must be 1 to 255 characters")
    return "r" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()[:15]


def _create_once(run: RunRecord, request: str) -> Callable[[Tx], bool]:
    """Create `run` unless its (idempotent) id exists; True if it was created now."""
    create = ops.create_run(run)

    def op(tx: Tx) -> bool:
        old = tx.get_run(run.id)
        if old is None:
            create(tx)
            return True
        if (old.options.get("idempotency") or {}).get("request") != request:
            raise IdempotencyConflict(
                f"idempotency key {run.options['idempotency']['key']!r} was already used for "
                f"another request (run {old.id}); use a new key for a different request")
        return False
    return op


@functools.lru_cache(maxsize=1024)
def _checked_agent(agent: Any, ref: str, input_given: bool) -> None:
    check_agent(agent, ref, input_given=input_given)


def _check_agent_once(agent: Any, ref: str, input_given: bool) -> None:
    """`check_agent` reads the agent's signature (inspect.signature: ~70 µs, a tenth of the CPU
    of a submit through the API); an agent that passed the check passes it again, so it is
    checked once per agent (a failure is not cached: it raises every time)."""
    try:
        hash(agent)
    except TypeError:  # an unhashable callable object: check it every time
        check_agent(agent, ref, input_given=input_given)
        return
    _checked_agent(agent, ref, input_given)


class Tether:
    def __init__(
        self,
        db: str | os.PathLike[str] | Store | None = None,
        *,
        interceptors: Sequence[Interceptor] | Callable[[RunRecord], Sequence[Interceptor]] = (),
        max_depth: int | None = None,
        tenant_limits: dict[str, int] | None = None,
        lease_ttl: float = 30.0,
        concurrency: int = 256,
        guards: str | object | None = None,
        must_exist: bool = False,
    ) -> None:
        """`guards`: what every run submitted here executes under. A `module:NAME` reference
        is recorded with each run, so every worker, in any process, enforces it (and one that
        cannot load it leaves the run waiting); a `Guards` object applies to runs executed by
        this process's workers only. `must_exist`: refuse (StoreMissing) a database file that
        does not exist instead of creating it, for read-only uses where a typo must not look
        like an empty database."""
        self.store = open_store(db, must_exist=must_exist)
        self.interceptors = interceptors
        self.guards = guards
        guards_ref(guards)  # a malformed reference fails here, not in a worker
        self.max_depth = checked_max_depth(max_depth)
        self.tenant_limits = tenant_limits
        self.lease_ttl = lease_ttl
        self.concurrency = concurrency
        self._workers: list[Worker] = []
        #: called with each worker this client creates (`tether.observe.export_live` plugs in)
        self.worker_listeners: list[Callable[[Worker], None]] = []

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        agent: Callable[..., Any] | str,
        input: Any = _NO_INPUT,
        *,
        tenant: str = "default",
        run_id: str | None = None,
        options: dict[str, Any] | None = None,
        max_depth: int | None = None,
        spec_version: str | None = None,
        guards: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue a run and return its id. Any worker on the same database may execute it.

        `guards` (a `module:NAME` reference, default the client's) is recorded with the run.
        What no worker could execute is refused here, before anything is queued: a reference
        that does not import or names no `async def (ctx, input)` agent, or a missing input the
        agent needs. `idempotency_key`: see `submit_once`."""
        if idempotency_key is not None:
            return self.submit_once(agent, input, key=idempotency_key, tenant=tenant,
                                    options=options, max_depth=max_depth,
                                    spec_version=spec_version, guards=guards)[0]
        run = self._new_run(agent, input, tenant, run_id, options, max_depth, spec_version,
                            guards)
        self.store.write(ops.create_run(run))
        self.kick()
        return run.id

    def submit_once(self, agent: Callable[..., Any] | str, input: Any = _NO_INPUT, *, key: str,
                    tenant: str = "default", **kwargs: Any) -> tuple[str, bool]:
        """Queue a run at most once per (tenant, `key`): a retried request (a client that
        timed out, a server restarted in between) gets the first run's id and queues nothing.
        Returns (run id, created now). The same key with another agent, input or options
        raises `IdempotencyConflict`."""
        run, op = self.prepare(agent, input, tenant=tenant, idempotency_key=key, **kwargs)
        created = bool(self.store.write(op))
        if created:
            self.kick()
        return run.id, created

    def prepare(self, agent: Callable[..., Any] | str, input: Any = _NO_INPUT, *,
                tenant: str = "default", idempotency_key: str | None = None,
                **kwargs: Any) -> tuple[RunRecord, Callable[[Tx], bool]]:
        """The run `submit` would queue, checked, and the store operation that queues it
        (returning True if it created the run), for a caller that batches its writes: the
        server commits it through its group committer, many submits to one transaction."""
        run_id = (idempotent_run_id(tenant, idempotency_key) if idempotency_key is not None
                  else None)
        run = self._new_run(agent, input, tenant, run_id, kwargs.get("options"),
                            kwargs.get("max_depth"), kwargs.get("spec_version"),
                            kwargs.get("guards"))
        if idempotency_key is None:
            create = ops.create_run(run)
            return run, lambda tx: bool(create(tx))
        request = hashlib.sha256(orjson.dumps(  # key order does not make another request
            [run.agent, run.input, run.options],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()
        run.options["idempotency"] = {"key": idempotency_key, "request": request}
        return run, _create_once(run, request)

    def submit_many(
        self,
        agent: Callable[..., Any] | str,
        inputs: Iterable[Any],
        *,
        tenant: str = "default",
        options: dict[str, Any] | None = None,
        max_depth: int | None = None,
        spec_version: str | None = None,
    ) -> list[str]:
        """Queue one run per input in a single transaction (one fsync for the whole batch).
        All or nothing: if any input is invalid, no run is created."""
        runs = [self._new_run(agent, item, tenant, None, options, max_depth, spec_version)
                for item in inputs]
        creates = [ops.create_run(run) for run in runs]
        self.store.write(lambda tx: [create(tx) for create in creates])
        self.kick()
        return [run.id for run in runs]

    def _new_run(self, agent: Callable[..., Any] | str, input: Any, tenant: str,
                 run_id: str | None, options: dict[str, Any] | None, max_depth: int | None,
                 spec_version: str | None, guards: str | None = None) -> RunRecord:
        if run_id is not None and "." in run_id:
            raise InvalidInput(
                f"run id {run_id!r}: a run you submit may not have a '.' in its id; a child "
                f"run's id is its parent's id + '.KEY', so this run would be taken for a child "
                f"of {run_id.partition('.')[0]!r} (stored on that run's shard, left out of run "
                "id prefix lookups); choose an id without '.', or leave run_id out for a "
                "generated one")
        check_tenant(tenant)
        ref = portable_ref(agent)
        _check_agent_once(resolve_agent(ref) if isinstance(agent, str) else agent, ref,
                          input is not _NO_INPUT)
        if input is _NO_INPUT:
            input = None
        try:
            dumps(input)
        except TypeError as exc:
            raise InvalidInput(f"the input of agent {ref} is not JSON-serializable: {exc}") from exc
        opts = dict(options or {})
        if checked_max_depth(max_depth) is not None:
            opts["max_depth"] = max_depth
        checked_max_depth(opts.get("max_depth"))  # given in options, as the worker reads it
        declared = guards_ref(guards) or guards_ref(self.guards)
        if declared is not None:
            opts["guards"] = declared
        run_id = run_id or new_run_id()
        return RunRecord(id=run_id, agent=ref, status="queued", input=input, tenant=tenant,
                         root_id=run_id, spec_version=spec_version, options=opts)

    async def run(self, agent: Callable[..., Any] | str, input: Any = _NO_INPUT,
                  **kwargs: Any) -> RunRecord:
        """Submit and execute in this process. Returns when the run finished, or when it waits
        for something only the outside world can provide (a signal, a human decision)."""
        run_id = self.submit(agent, input, **kwargs)
        return await self.drive(run_id)

    async def drive(self, run_id: str, *, timer_horizon: float = 30.0, stop: asyncio.Event
                    | None = None, worker: Worker | None = None) -> RunRecord:
        """Execute runs here until `run_id` finishes or waits for what is not imminent (a
        signal, a decision, a timer over `timer_horizon` s away). `stop`: as for `Worker.serve`
        (runs handed back: Ctrl-C in `tether run`), with `worker` if given."""
        self.get(run_id)
        worker = worker if worker is not None else self.worker()

        def settled() -> bool:
            try:
                return self._settled(run_id, timer_horizon)
            except StoreUnavailable:  # the run waits for the store too: look again later
                return False

        await worker.serve(stop=stop, until=settled)
        return self.get(run_id)

    def _settled(self, run_id: str, timer_horizon: float = 30.0) -> bool:
        run = self.store.get_run(run_id)
        if run is None or run.finished:
            return True
        horizon = self.store.now() + timer_horizon

        def idle(r: RunRecord) -> bool:
            return r.status == "waiting" and (r.wake_at is None or r.wake_at > horizon)

        if not idle(run):
            return False
        # Settled once nothing else in the run's tree can progress soon either.
        root = run.root_id or run.id
        tree = [r for r in self.store.list_runs(status=("queued", "running", "waiting"),
                                                limit=1_000_000) if r.root_id == root]
        return all(idle(r) for r in tree)

    async def replay(
        self,
        run_id: str,
        agent: Callable[..., Any] | None = None,
        *,
        interceptors: Sequence[Interceptor] = (),
    ) -> Any:
        """Re-execute a run purely from its journal and return what the agent returns.

        Nothing runs live and nothing is written: if the code (by default the run's own agent;
        pass a new version to check it against production journals before deploying) makes a
        call the journal does not hold, or a different one, `NonDeterminismError` names the
        step."""
        run = self.get(run_id)
        fn = agent if agent is not None else resolve_agent(run.agent)
        committer = GroupCommitter(self.store)
        try:
            ctx = Context(run, self.store, committer, "replay-only",
                          replayable(self.store.load_events(run_id)), interceptors=interceptors,
                          max_depth=self.max_depth, read_only=True)

            async def execute() -> Any:
                result = await fn(ctx, run.input)
                ctx.check_complete()
                return result

            # a fresh context, as a worker gives each execution: journal keys start at 1
            return await asyncio.create_task(execute(), context=contextvars.Context())
        finally:
            committer.close()

    def worker(self, **kwargs: Any) -> Worker:
        settings: dict[str, Any] = {
            "interceptors": self.interceptors, "max_depth": self.max_depth,
            "tenant_limits": self.tenant_limits, "lease_ttl": self.lease_ttl,
            "concurrency": self.concurrency, "guards": self.guards,
        }
        settings.update(kwargs)
        worker = Worker(self.store, **settings)
        self._workers.append(worker)
        for listener in self.worker_listeners:
            listener(worker)
        return worker

    def adopt(self, worker: Worker) -> Worker:
        """Make a worker built apart from `worker()` (a server's own, on this client's store)
        one of this client's: its submissions kick it, and its listeners (live trace export,
        live metrics) follow the runs it executes."""
        if worker not in self._workers:
            self._workers.append(worker)
            for listener in self.worker_listeners:
                listener(worker)
        return worker

    def kick(self) -> None:
        """Have this process's workers look at the store now: for a change written to it
        directly (an approval decision), not through a `Tether` method, which kicks them."""
        for worker in self._workers:
            worker.kick()

    # -- inspecting ------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id, getattr(self.store, "path", ""))
        return run

    def resolve_run_id(self, prefix: str) -> str:
        """The one run id that is `prefix` or starts with it, so people can type the first
        characters of an id; an ambiguous prefix raises `AmbiguousRunId` naming the
        candidates, and one that matches nothing raises `RunNotFound`."""
        if not prefix:
            raise InvalidInput("a run id (or the first characters of one) is required")
        if self.store.get_run(prefix) is not None:
            return prefix
        # A child's id is its parent's id + ".KEY": the first characters of a parent's id are
        # also those of all its descendants', and name the parent, not an ambiguity.
        found = self.store.run_ids_with_prefix(prefix, limit=_PREFIX_CANDIDATES, outermost=True)
        if not found:
            raise NoRunWithPrefix(prefix, getattr(self.store, "path", ""))
        if len(found) > 1:
            raise AmbiguousRunId(prefix, found)
        return found[0]

    def awaited_signals(self, run_id: str) -> list[str]:
        """The signal names the run's journal says it is waiting for now (asked for with
        `ctx.wait_for` and not received yet), in the order it asked."""
        return v.awaited_signals(self.events(run_id))

    def leases(self, run_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """Who holds each run's lease and until when (owner, expires_at): a running run whose
        lease has expired lost its worker and will be taken over by another."""
        return self.store.leases(run_ids)

    def runs(self, *, status: str | Iterable[str] | None = None, tenant: str | None = None,
             limit: int = 100) -> list[RunRecord]:
        return self.store.list_runs(status=status, tenant=tenant, limit=limit)

    def events(self, run_id: str) -> list[Event]:
        self.get(run_id)
        return self.store.load_events(run_id)

    # -- steering --------------------------------------------------------------------------
    def signal(self, run_id: str, name: str, payload: Any = None) -> int:
        self.get(run_id)
        try:
            dumps(payload)
        except TypeError as exc:
            raise InvalidInput(f"signal payload is not JSON-serializable: {exc}") from exc
        signal_id = self.store.write(ops.send_signal(run_id, name, payload))
        self.kick()
        return int(signal_id)

    def cancel(self, run_id: str, reason: str = "cancelled by request") -> list[str]:
        self.get(run_id)
        touched = self.store.write(ops.request_cancel(run_id, reason))
        for worker in self._workers:
            worker.cancel_local(touched)
        return list(touched)

    def resolve(self, run_id: str, action: str, *, result: Any = None,
                key: str | None = None) -> str:
        self.get(run_id)
        target = self.store.write(ops.resolve_in_doubt(run_id, action, result, key))
        self.kick()
        return str(target)

    def retry(self, run_id: str, *, budget: dict[str, Any] | None = None) -> RetryPlan:
        """Queue a new attempt of a failed (or halted) run and return what it will do: the
        steps journaled before the failure replay, the failed step(s) execute again, then the
        agent goes on live (`tether.runtime.retry`). Any worker executes it; `drive` here.
        `budget`: limits raised for the new attempt (a halted run halts again without)."""
        run = self.get(run_id)
        plan = plan_retry(run, self.store.load_events(run_id), budget=budget)
        self.store.write(ops.retry(run_id, plan))
        self.kick()
        return plan

    def delete(self, run_id: str) -> Deleted:
        """Delete a finished run tree, `run_id` being its root, with its whole journal and
        everything kept for it (`tether.runtime._retention`). Refused (`RunNotDeletable`) for
        a run with a parent, or while anything in the tree has not finished."""
        return delete_tree(self.store, run_id)

    def prune(self, *, finished_before: float, tenant: str | None = None,
              statuses: Iterable[str] | None = None, dry_run: bool = False) -> Deleted:
        """Delete every run tree whose root ended before `finished_before` (a Unix time, by
        the store's clock; `statuses`: only those ends, e.g. `["succeeded"]`); trees with a
        run still going are kept and listed in the result's `kept`. `dry_run`: count only."""
        return prune(self.store, finished_before=finished_before, tenant=tenant,
                     statuses=None if statuses is None else list(statuses), dry_run=dry_run)

    def close(self) -> None:
        self.store.close()
