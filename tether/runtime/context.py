"""`ctx`: the only way an agent touches the world.

Every operation is journaled under a deterministic key (see `journal.py`). When the journal already
holds the operation's outcome, the outcome is returned without doing anything (replay); otherwise
the operation runs live and its outcome is appended. Live and replayed values are identical because
both are decoded from the same JSON.

`Context` is the whole of ctx's API and documents every operation; the larger parts live in
modules of their own: key scopes in `_keys.py`, the write path (a base class) in `_writes.py`,
steps in `_steps.py`, children and `gather` in `_children.py`, model and tool calls in
`effects/`. Those modules take the context as one of the narrow views in `_views.py`, never as
`Context`, so none of them imports this module: dependencies inside the runtime point one way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random as _random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tether.store import NewEvent, RunRecord, Store, Tx, dumps

from . import _children, _steps
from ._children import ChildHandle
from ._keys import _Scope as _Scope  # the worker starts each execution in a fresh scope
from ._keys import _scope as _scope
from ._writes import _Writes
from .committer import GroupCommitter
from .errors import Drain, InvalidInput, NonDeterminismError, SignalTimeout, Suspend
from .executors import Executor, Resources
from .interceptors import Effect, Interceptor
from .journal import FAMILY, Journal
from .retry import StepRetry

if TYPE_CHECKING:
    from tether.store import Event

T = TypeVar("T")
log = logging.getLogger("tether.agent")

# Timers shorter than this are slept in-process instead of releasing the worker.
INLINE_SLEEP_SECONDS = 1.0
DEFAULT_MAX_DEPTH = 8


def checked_max_depth(value: int | None) -> int | None:
    """A child-run depth limit as given, refused when it cannot mean anything: a negative or
    non-integer limit would reject every child with an error that blames the child."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInput(f"max_depth must be a whole number of 0 or more (0: no child runs), "
                           f"not {value!r}")
    return value


class Context(_Writes):
    def __init__(
        self,
        run: RunRecord,
        store: Store,
        committer: GroupCommitter,
        owner: str,
        events: Sequence[Event],
        *,
        interceptors: Sequence[Interceptor[Context]] = (),
        max_depth: int | None = None,
        epoch: int | None = None,
        read_only: bool = False,
        executor: Executor | None = None,
        lease_ttl: float | None = None,
    ) -> None:
        """`lease_ttl`: the claim's; every write extends the lease to at least that long from
        its commit (`Tx.check_lease`)."""
        journal = Journal(events)
        # sets run, read_only, epoch, owner and the write path's own state
        super().__init__(run, committer, owner, last_seq=journal.last_seq, epoch=epoch,
                         read_only=read_only, clock=store.now, lease_ttl=lease_ttl)
        self.store = store
        #: where steps that declare `resources` execute (None: in this process, like the rest)
        self.executor = executor
        self.scratch: dict[str, Any] = {}
        self.interceptors: list[Interceptor[Context]] = list(interceptors)
        # The guards this run executes under (a `tether.guards.Guards`, opaque to the runtime),
        # set by whoever installed their interceptors: built-in strategies route every model and
        # tool call through them, so a refusal is an observation rather than an error.
        self.guards: Any = None
        self._journal = journal
        self._visited: set[str] = set()
        self._replayed = 0  # journaled operations the code has reached again
        self._nondeterminism: NonDeterminismError | None = None
        # Set by the worker: "drain" (shutting down: stop at the next effect), "cancel" (the run
        # was cancelled: record interrupted steps as failed) or "lease" (lost: write nothing).
        self.stop_reason: str | None = None
        default = DEFAULT_MAX_DEPTH if max_depth is None else max_depth
        self.max_depth = int(run.options.get("max_depth", default))

    # -- identity --------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def tenant(self) -> str:
        return self.run.tenant

    @property
    def depth(self) -> int:
        return self.run.depth

    @property
    def options(self) -> dict[str, Any]:
        return self.run.options

    @property
    def replaying(self) -> bool:
        """True while the journal still holds outcomes the code has not consumed."""
        return self._replayed < len(self._journal.by_key)

    # -- keys and replay -------------------------------------------------------------------
    def _next_key(self) -> str:
        scope = _scope.get(None)
        if scope is None:
            scope = _Scope("")
            _scope.set(scope)
        scope.counter += 1
        return f"{scope.prefix}{scope.counter}"

    def _recorded(self, key: str, family: str, name: str | None) -> list[Event] | None:
        events = self._journal.get(key)
        self._visited.add(key)
        if not events:
            return None
        self._replayed += 1
        first = events[0]
        if FAMILY.get(first.kind) != family or first.name != name:
            err = NonDeterminismError(
                self.run_id, key, f"{FAMILY.get(first.kind, first.kind)} {first.name!r}",
                f"{family} {name!r}",
            )
            self._nondeterminism = self._nondeterminism or err
            raise err
        return events

    # -- interceptors ----------------------------------------------------------------------
    async def _before(self, effect: Effect) -> None:
        if self.stop_reason == "drain":
            raise Drain()
        for interceptor in self.interceptors:
            await interceptor.before(self, effect)

    async def _after(self, effect: Effect, result: Any, error: BaseException | None,
                     replay: bool) -> None:
        for interceptor in self.interceptors:
            await interceptor.after(self, effect, result, error, replay)

    # -- steps (activities) ----------------------------------------------------------------
    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        idempotent: bool | None = None,
        timeout: float | None = None,
        meta: dict[str, Any] | None = None,
        pure: bool = False,
        resources: Resources | None = None,
        retry: StepRetry | None = None,
    ) -> Any:
        """Run `fn(*args)` as a journaled activity and return its (JSON) result.

        Completed steps are never executed again. A step whose start is journaled but whose outcome
        is not (the worker died while it ran) is re-run only when `idempotent` (by default: fn
        was declared so with `@activity(idempotent=True)`, or takes an `idempotency_key`
        parameter and was not declared otherwise); else the run waits for a human decision
        (`tether resolve`).

        `pure=True` declares that fn has no side effects (a state transformation, a parser): only
        its result is journaled and nothing waits for the disk, so it costs no fsync. A crash
        before the result reached the disk just computes it again.

        `resources` (`Resources(num_cpus=, num_gpus=, memory=)`) marks a heavy step: a worker
        with an executor (`Worker(executor=RayExecutor(...))`) runs it there, with those
        resources reserved; any other worker runs it in its own process. `retry`
        (`StepRetry`) runs a failed attempt again under the same key, e.g. with more memory
        after an out-of-memory kill (`on_oom=grow_memory(2.0)`). Without one, only an
        idempotent step whose executor lost it (a Ray worker died) runs again."""
        return await _steps.step(self, name, fn, args, idempotent=idempotent, timeout=timeout,
                                 meta=meta, pure=pure, resources=resources, retry=retry,
                                 executor=self.executor)

    # -- deterministic sources -------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The current time, journaled: replay sees the time the run first saw."""
        key = self._next_key()
        events = self._recorded(key, "now", None)
        if events:
            value = float(events[0].data)
        else:
            value = self.store.now()
            self._append("now", key, None, value)
        return dt.datetime.fromtimestamp(value, dt.UTC)

    def random(self) -> float:
        """A random float in [0, 1), journaled."""
        key = self._next_key()
        events = self._recorded(key, "random", None)
        if events:
            return float(events[0].data)
        value = _random.random()
        self._append("random", key, None, value)
        return value

    def log(self, message: str, **fields: Any) -> None:
        """A journaled log line: shown in the run's timeline, written once however often the run
        is replayed."""
        key = self._next_key()
        if self._recorded(key, "log", None):
            return
        self._append("log", key, None, {"message": message, **fields} if fields else
                     {"message": message})
        log.info("[%s] %s", self.run_id, message, extra={"tether_fields": fields})

    def annotate(self, name: str, data: Any = None) -> None:
        """Journal a structured fact (a policy decision, a guard's verdict) once: skipped when
        the run is replayed, like `log`."""
        key = self._next_key()
        if self._recorded(key, "annotate", name):
            return
        self._append("annotation", key, name, data)

    def flag(self, reason: str, **details: Any) -> None:
        """Mark the run for human review (e.g. it called a honeypot). Shown by `tether runs`;
        written once however often the run is replayed."""
        key = self._next_key()
        if self._recorded(key, "flag", reason):
            return
        flag = {"reason": reason, **details}
        event = self._new_event("run_flagged", key, reason, flag)
        run_id = self.run_id

        def add_flag(tx: Tx) -> None:
            current = tx.get_run(run_id)
            tx.update_run(run_id, flags=[*(current.flags if current else []), flag])

        self._write([event], add_flag)
        self.run.flags.append(flag)

    def add_usage(self, amounts: dict[str, float], *, day: str | None = None,
                  tenants: Sequence[str] | None = None) -> None:
        """Add to per-day usage counters: the run's tenant's, or each of `tenants` (the guards
        charge every tenant of the run's tree), in one write. It consumes no journal key and is
        not skipped on replay, so call it only where live work is known — an interceptor's
        `after` with `replay=False` — never from agent code. Ordered with the journal writes."""
        every = tuple(tenants) if tenants is not None else (self.tenant,)
        day = day or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")

        def add(tx: Tx) -> None:
            for tenant in every:
                tx.add_usage(tenant, day, amounts)

        self._write([], add)

    # -- durable waits ---------------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """A durable timer. Long sleeps release the worker; the run costs a row until it fires."""
        key = self._next_key()
        events = self._recorded(key, "sleep", None)
        if events and events[-1].kind == "timer_fired":
            return
        if events:
            fire_at = float(events[0].data["fire_at"])
        else:
            fire_at = self.store.now() + max(0.0, float(seconds))
            self._append("timer_started", key, None, {"seconds": seconds, "fire_at": fire_at})
        remaining = fire_at - self.store.now()
        if remaining > INLINE_SLEEP_SECONDS:
            raise Suspend(f"timer {key} fires at {_iso(fire_at)}", wake_at=fire_at)
        if remaining > 0:
            await asyncio.sleep(remaining)
        self._append("timer_fired", key, None)

    async def wait_for(self, signal: str, *, timeout: float | None = None) -> Any:
        """Wait durably for an external signal (e.g. an approval) and return its payload."""
        key = self._next_key()
        events = self._recorded(key, "wait_for", signal)
        deadline: float | None = None
        if events:
            last = events[-1]
            if last.kind == "signal_received":
                if last.data.get("timed_out"):
                    raise SignalTimeout(signal, float(timeout or 0))
                return last.data.get("payload")
            deadline = events[0].data.get("deadline")
        else:
            deadline = self.store.now() + timeout if timeout is not None else None
            self._append("signal_waiting", key, signal, {"deadline": deadline})
        received = self._new_event("signal_received", key, signal, None)
        run_id = self.run_id
        consumer = f"{self.run_id}:{key}"

        def consume(tx: Tx) -> Any:
            found = tx.consume_signal(run_id, signal, consumer)
            if found is None:
                return None
            event = NewEvent(received.seq, received.kind, key, signal,
                             dumps({"payload": found.payload, "signal_id": found.id}), tx.now())
            tx.append_events(run_id, [event])
            return {"payload": found.payload}

        got = await self._write_durable([], consume)
        if got is not None:
            return got["payload"]
        if deadline is not None and self.store.now() >= deadline:
            self._append("signal_received", key, signal, {"timed_out": True})
            raise SignalTimeout(signal, float(timeout or 0))
        raise Suspend(f"waiting for signal {signal!r}", signals=(signal,), wake_at=deadline)

    # -- children --------------------------------------------------------------------------
    async def spawn(
        self,
        agent: Callable[..., Any] | str,
        input: Any = None,
        *,
        tenant: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> ChildHandle:
        """Start a child run (durably, exactly once) and return a handle to join it."""
        return await _children.spawn(self, agent, input, tenant=tenant, options=options)

    # -- concurrency -----------------------------------------------------------------------
    async def gather(self, *aws: Awaitable[Any]) -> list[Any]:
        """Run effects or children concurrently; results come back in argument order.

        Each branch gets its own key scope, so replay is deterministic whatever order the branches
        finished in. If a branch raises, the others are cancelled and the error propagates
        (structured concurrency). If branches must wait (timer, signal, child), the run suspends
        after every other branch has gone as far as it can."""
        return await _children.gather(self, *aws)

    # -- higher-level effects (built on `step` in `effects/`, and the sandbox's own) --------
    async def exec(self, code: str | Sequence[str], **kwargs: Any) -> Any:
        """Run code (or a command list) in an ephemeral sandbox, journaled; the run's workspace
        persists between execs as artifacts. Keywords: `language` ("python" | "bash"),
        `backend` ("bwrap" | "gvisor"), `timeout`, `limits`, `files`, `stdin`, `env`.
        See `tether.sandbox`."""
        from tether.sandbox.effect import exec_effect

        return await exec_effect(self, code, **kwargs)

    async def model(self, model: Any, messages: Any, **kwargs: Any) -> Any:
        """Call a language model, journaled (see `tether.models`)."""
        from .effects.model import model_effect

        return await model_effect(self, model, messages, **kwargs)

    async def tool(self, tools: Any, name: str | None = None,
                   arguments: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call a tool from a registry (or a single tool), journaled and checked by the
        interceptors; `version=` pins a version. See `tether.tools`."""
        from .effects.tool import tool_effect

        return await tool_effect(self, tools, name, arguments or {}, **kwargs)

    # -- end of run ------------------------------------------------------------------------
    def check_complete(self) -> None:
        """After the agent returned: every journaled operation must have been replayed, otherwise
        the code dropped a step it once performed."""
        if self._nondeterminism is not None:
            raise self._nondeterminism
        missing = [k for k in self._journal.by_key if k not in self._visited]
        if missing:
            key = min(missing, key=lambda k: self._journal.by_key[k][0].seq)
            first = self._journal.by_key[key][0]
            raise NonDeterminismError(
                self.run_id, key, f"{FAMILY.get(first.kind, first.kind)} {first.name!r}",
                "nothing (the agent returned without reaching that step)",
            )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
