"""`ctx`: the only way an agent touches the world.

Every operation is journaled under a deterministic key (see `journal.py`). When the journal already
holds the operation's outcome, the outcome is returned without doing anything (replay); otherwise
the operation runs live and its outcome is appended. Live and replayed values are identical because
both are decoded from the same JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tether.store import NewEvent, RunRecord, Store, Tx, dumps, loads

from . import ops
from .calls import ThreadOutlivedCancel, accepts_idempotency_key, call, failure
from .committer import GroupCommitter
from .errors import (
    ActivityError,
    ChildFailed,
    DepthLimitExceeded,
    Drain,
    InDoubt,
    NonDeterminismError,
    NotSerializable,
    ShortCircuit,
    SignalTimeout,
    Suspend,
)
from .interceptors import Effect, Interceptor
from .journal import FAMILY, Journal
from .refs import agent_ref

if TYPE_CHECKING:
    from tether.store import Event

T = TypeVar("T")
log = logging.getLogger("tether.agent")

# Timers shorter than this are slept in-process instead of releasing the worker.
INLINE_SLEEP_SECONDS = 1.0
# A run whose writes commit inline yields to its event loop at least this often (seconds).
YIELD_EVERY = 0.005
# Cancellation message gather uses when a branch failed: siblings' interrupted steps are then
# journaled as cancelled (the runtime chose to stop them), not left in doubt.
SIBLING_FAILED = "tether: a sibling branch failed"
# Outcomes that stop a branch without failing the gather: the others go as far as they can.
_PAUSES = (Suspend, Drain, InDoubt)
DEFAULT_MAX_DEPTH = 8


class _Scope:
    __slots__ = ("counter", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.counter = 0


_scope: contextvars.ContextVar[_Scope] = contextvars.ContextVar("tether_scope")


class ChildHandle:
    """A spawned child run. `await handle` (or `await handle.result()`) joins it durably."""

    def __init__(self, ctx: Context, child_id: str) -> None:
        self._ctx = ctx
        self.id = child_id

    def result(self) -> Awaitable[Any]:
        return self._ctx._join(self.id)

    def __await__(self) -> Any:
        return self._ctx._join(self.id).__await__()

    def __repr__(self) -> str:
        return f"ChildHandle({self.id!r})"


class Context:
    def __init__(
        self,
        run: RunRecord,
        store: Store,
        committer: GroupCommitter,
        owner: str,
        events: Sequence[Event],
        *,
        interceptors: Sequence[Interceptor] = (),
        max_depth: int | None = None,
        epoch: int | None = None,
        read_only: bool = False,
    ) -> None:
        self.run = run
        # replay-only execution (Tether.replay): any write means the code went past its journal
        self.read_only = read_only
        self.epoch = epoch  # the claim this execution holds; every write is fenced by it
        self.store = store
        self.owner = owner
        self.scratch: dict[str, Any] = {}
        self.interceptors = list(interceptors)
        self._committer = committer
        self._journal = Journal(events)
        self._seq = self._journal.last_seq
        self._visited: set[str] = set()
        self._replayed = 0  # journaled operations the code has reached again
        self._background_error: BaseException | None = None
        self._pending: list[NewEvent] = []  # appended, not yet handed to the committer
        self._flush_scheduled = False
        self._last_yield = time.monotonic()
        self._nondeterminism: NonDeterminismError | None = None
        # Set by the worker: "drain" (shutting down: stop at the next effect), "cancel" (the run
        # was cancelled: record interrupted steps as failed) or "lease" (lost: write nothing).
        self.stop_reason: str | None = None
        self.max_depth = int(run.options.get("max_depth", max_depth or DEFAULT_MAX_DEPTH))

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

    # -- journal plumbing ------------------------------------------------------------------
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

    def _new_event(self, kind: str, key: str | None, name: str | None, data: Any,
                   *, raw: bytes | None = None) -> NewEvent:
        self._seq += 1
        payload = raw if raw is not None else (dumps(data) if data is not None else None)
        return NewEvent(self._seq, kind, key, name, payload, time.time())

    def _check_writable(self, event: NewEvent) -> None:
        if self.read_only:
            raise NonDeterminismError(
                self.run_id, event.key or "(run)", "nothing more (the journal ends here)",
                f"{FAMILY.get(event.kind, event.kind)} {event.name!r}")

    def _write(self, events: list[NewEvent], then: Callable[[Tx], Any] | None = None, *,
               awaited: bool = False) -> asyncio.Future[Any]:
        """One fenced op: the events appended but not yet submitted, then `events`, then
        `then(tx)`. The future resolves when the op is durable (and so is everything before it:
        the committer applies ops in order). `awaited`: the caller waits for it right away, so
        the committer may write it inline when this run is alone."""
        if events:
            self._check_writable(events[0])
        self._raise_background_error()
        return self._submit_op(events, then, inline=awaited)

    def _submit_op(self, events: list[NewEvent], then: Callable[[Tx], Any] | None = None, *,
                   inline: bool = False) -> asyncio.Future[Any]:
        if self._pending:
            events = self._pending + events
            self._pending = []
        run_id, owner, epoch = self.run_id, self.owner, self.epoch

        def op(tx: Tx) -> Any:
            tx.check_lease(run_id, owner, epoch)
            if events:
                tx.append_events(run_id, events)
            return then(tx) if then is not None else None

        fut = self._committer.submit(op, inline=inline)
        if fut.done():
            self._note_background(fut)
        else:
            fut.add_done_callback(self._note_background)
        return fut

    def _append(self, kind: str, key: str | None, name: str | None, data: Any = None,
                *, raw: bytes | None = None) -> None:
        """Append without waiting. The event rides along with the run's next write (typically
        a step's completion with the next step's start: one op, one commit per step) or, if
        none comes in this turn of the event loop, is submitted on its own. Ordering holds
        either way: the next durable write implies this event is on disk."""
        event = self._new_event(kind, key, name, data, raw=raw)
        self._check_writable(event)
        self._raise_background_error()
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_pending)

    def flush_pending(self) -> None:
        """Submit the events appended but not yet submitted, without waiting. The worker calls
        it before any run-state write of its own, so the journal is ordered before it."""
        self._flush_scheduled = False
        if self._pending:
            self._submit_op([])

    def take_pending(self, kind: str, data: Any = None) -> list[NewEvent]:
        """The events not yet submitted plus a run-level event, to commit together with the
        run's final status."""
        events, self._pending = [*self._pending, self._new_event(kind, None, None, data)], []
        return events

    async def _append_durable(self, kind: str, key: str | None, name: str | None,
                              data: Any = None) -> int:
        event = self._new_event(kind, key, name, data)
        await self._durable(self._write([event], awaited=True))
        return event.seq

    async def _durable(self, fut: asyncio.Future[Any]) -> Any:
        """Await a write. One committed inline comes back done, and awaiting a done future
        does not yield: a run of such steps would keep the event loop from its heartbeat,
        cancellations and other runs, so yield at least every `YIELD_EVERY` seconds."""
        if not fut.done():
            return await fut
        now = time.monotonic()
        if now - self._last_yield > YIELD_EVERY:
            self._last_yield = now
            await asyncio.sleep(0)
        return fut.result()

    def _note_background(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None and self._background_error is None:
            self._background_error = fut.exception()

    def _raise_background_error(self) -> None:
        if self._background_error is not None:
            raise self._background_error

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        await self._durable(self._write([], awaited=True))
        self._raise_background_error()

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
    ) -> Any:
        """Run `fn(*args)` as a journaled activity and return its (JSON) result.

        Completed steps are never executed again. A step whose start is journaled but whose outcome
        is not (the worker died while it ran) is re-run only when `idempotent` (by default: fn
        was declared so with `@activity(idempotent=True)`, or takes an `idempotency_key`
        parameter and was not declared otherwise); else the run waits for a human decision
        (`tether resolve`).

        `pure=True` declares that fn has no side effects (a state transformation, a parser): only
        its result is journaled and nothing waits for the disk, so it costs no fsync. A crash
        before the result reached the disk just computes it again."""
        key = self._next_key()
        if idempotent is None:
            # declared with @activity, else: a function that takes the idempotency key promises
            # to use it, so running it again is safe (DESIGN §3)
            declared = getattr(fn, "__tether_idempotent__", None)
            idempotent = accepts_idempotency_key(fn) if declared is None else bool(declared)
        effect = Effect("step", name, key, args, dict(meta or {}))
        events = self._recorded(key, "step", name)
        attempt = 1
        first_seq: int | None = None
        if events:
            last = events[-1]
            first_seq = events[0].seq
            attempt = 1 + sum(1 for e in events if e.kind == "step_started")
            if last.kind == "step_completed":
                await self._after(effect, last.data, None, True)
                return last.data
            if last.kind == "step_failed":
                error = _activity_error(name, key, last.data)
                await self._after(effect, None, error, True)
                raise error
            if last.kind == "step_resolved" and last.data["action"] == "skip":
                await self._after(effect, last.data.get("result"), None, True)
                return last.data.get("result")
            if last.kind == "step_resolved" and last.data["action"] == "fail":
                error = ActivityError(name, "ResolvedAsFailed",
                                      "an operator resolved this in-doubt step as failed", key)
                await self._after(effect, None, error, True)
                raise error
            if last.kind != "step_resolved" and not idempotent:
                if last.kind != "step_in_doubt":
                    await self._append_durable("step_in_doubt", key, name, {"attempt": attempt - 1})
                raise InDoubt(self.run_id, key, name, first_seq)
        if pure:
            return await self._run_pure(effect, fn, args, timeout)
        return await self._run_step(effect, fn, args, idempotent, timeout, attempt, first_seq)

    async def _run_pure(self, effect: Effect, fn: Callable[..., Any], args: tuple[Any, ...],
                        timeout: float | None) -> Any:
        await self._before(effect)
        try:
            result = await call(fn, args, {}, timeout)
        except ThreadOutlivedCancel as late:  # pure: nothing to record, just stop
            raise late.cancel from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = failure(effect, exc, timeout)
            self._append("step_failed", effect.key, effect.name,
                         {"type": error.error_type, "message": error.message})
            await self._after(effect, None, error, False)
            raise error from exc
        return await self._complete(effect, result)

    async def _run_step(self, effect: Effect, fn: Callable[..., Any], args: tuple[Any, ...],
                        idempotent: bool, timeout: float | None, attempt: int,
                        first_seq: int | None) -> Any:
        name, key = effect.name, effect.key
        try:
            await self._before(effect)
        except ShortCircuit as short:
            return await self._short_circuit(effect, attempt, short)
        started: dict[str, Any] = {"attempt": attempt}
        if idempotent:
            started["idempotent"] = True
        if effect.meta:
            started["meta"] = effect.meta
        seq = await self._append_durable("step_started", key, name, started)
        kwargs: dict[str, Any] = {}
        if accepts_idempotency_key(fn):
            kwargs["idempotency_key"] = f"{self.run_id}:{first_seq or seq}"
        try:
            result = await call(fn, args, kwargs, timeout)
        except ThreadOutlivedCancel as late:  # journal what the thread did, then stop
            if late.outcome is None:
                with contextlib.suppress(ActivityError):
                    await self._complete(effect, late.result)
            else:
                self._append("step_failed", key, name, {"type": type(late.outcome).__name__,
                                                         "message": str(late.outcome)})
            raise late.cancel from None
        except asyncio.CancelledError as exc:
            if self.stop_reason == "cancel" or SIBLING_FAILED in exc.args:
                self._append("step_failed", key, name, {"type": "Cancelled",
                                                         "message": "the run was cancelled"})
            raise
        except Exception as exc:
            error = failure(effect, exc, timeout)
            self._append("step_failed", key, name,
                         {"type": error.error_type, "message": error.message})
            await self._after(effect, None, error, False)
            raise error from exc
        return await self._complete(effect, result)

    async def _complete(self, effect: Effect, result: Any) -> Any:
        try:
            encoded = dumps(result)
        except TypeError as exc:
            error = ActivityError(
                effect.name, "NotSerializable",
                str(NotSerializable(f"the result of step {effect.name!r}", str(exc))), effect.key)
            self._append("step_failed", effect.key, effect.name,
                         {"type": "NotSerializable", "message": error.message})
            await self._after(effect, None, error, False)
            raise error from exc
        self._append("step_completed", effect.key, effect.name, raw=encoded)
        value = loads(encoded)
        await self._after(effect, value, None, False)
        return value

    async def _short_circuit(self, effect: Effect, attempt: int, short: ShortCircuit) -> Any:
        try:
            encoded = dumps(short.result)
        except TypeError as exc:
            raise NotSerializable("a short-circuit result", str(exc)) from exc
        started: dict[str, Any] = {"attempt": attempt, "short_circuit": short.meta or True}
        if effect.meta:
            started["meta"] = effect.meta
        self._append("step_started", effect.key, effect.name, started)
        self._append("step_completed", effect.key, effect.name, raw=encoded)
        value = loads(encoded)
        await self._after(effect, value, None, False)
        return value

    # -- deterministic sources -------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The current time, journaled: replay sees the time the run first saw."""
        key = self._next_key()
        events = self._recorded(key, "now", None)
        if events:
            value = float(events[0].data)
        else:
            value = time.time()
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

    def add_usage(self, amounts: dict[str, float], *, day: str | None = None) -> None:
        """Add to the tenant's per-day usage counters. It consumes no journal key and is not
        skipped on replay, so call it only where live work is known — an interceptor's `after`
        with `replay=False` — never from agent code. Ordered with the run's journal writes."""
        tenant = self.tenant
        day = day or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        self._write([], lambda tx: tx.add_usage(tenant, day, amounts))

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
            fire_at = time.time() + max(0.0, float(seconds))
            self._append("timer_started", key, None, {"seconds": seconds, "fire_at": fire_at})
        remaining = fire_at - time.time()
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
            deadline = time.time() + timeout if timeout is not None else None
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

        got = await self._durable(self._write([], consume, awaited=True))
        if got is not None:
            return got["payload"]
        if deadline is not None and time.time() >= deadline:
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
        ref = agent_ref(agent)
        key = self._next_key()
        events = self._recorded(key, "spawn", ref)
        if events:
            last = events[-1]
            effect = Effect("spawn", ref, key, (input,), {"options": options or {}})
            if last.kind == "child_rejected":
                error = DepthLimitExceeded(self.depth, int(last.data["limit"]), self.run_id)
                await self._after(effect, None, error, True)
                raise error
            await self._after(effect, last.data["child_id"], None, True)
            return ChildHandle(self, last.data["child_id"])
        if self.depth + 1 > self.max_depth:
            self._append("child_rejected", key, ref, {"limit": self.max_depth})
            error = DepthLimitExceeded(self.depth, self.max_depth, self.run_id)
            await self._after(Effect("spawn", ref, key, (input,)), None, error, False)
            raise error
        try:
            dumps(input)
        except TypeError as exc:
            raise NotSerializable(f"the input of child agent {ref}", str(exc)) from exc
        await self._before(Effect("spawn", ref, key, (input,), {"options": options or {}}))
        child_options = {k: v for k, v in self.options.items() if k not in ("in_doubt",)}
        child_options.update(options or {})
        child_id = f"{self.run_id}.{key.replace(':', '_')}"
        child = RunRecord(
            id=child_id, agent=ref, status="queued", input=input,
            tenant=tenant or self.tenant, parent_id=self.run_id,
            root_id=self.run.root_id or self.run_id, depth=self.depth + 1,
            spec_version=self.run.spec_version, options=child_options,
        )
        event = self._new_event("child_spawned", key, ref, {"child_id": child_id})
        await self._durable(self._write([event], ops.create_run(child), awaited=True))
        await self._after(Effect("spawn", ref, key, (input,), {"options": options or {}}),
                          child_id, None, False)
        return ChildHandle(self, child_id)

    async def _join(self, child_id: str) -> Any:
        key = self._next_key()
        events = self._recorded(key, "join", child_id)
        if events:
            return _child_outcome(child_id, events[-1].data)
        child = self.store.get_run(child_id)
        if child is None or child.finished:
            data = {
                "status": child.status if child else "failed",
                "result": child.result if child else None,
                "error": (child.error or child.reason) if child else "child run vanished",
            }
            self._append("child_completed", key, child_id, data)
            return _child_outcome(child_id, data)
        raise Suspend(f"waiting for child run {child_id}", children=(child_id,))

    # -- concurrency -----------------------------------------------------------------------
    async def gather(self, *aws: Awaitable[Any]) -> list[Any]:
        """Run effects or children concurrently; results come back in argument order.

        Each branch gets its own key scope, so replay is deterministic whatever order the branches
        finished in. If a branch raises, the others are cancelled and the error propagates
        (structured concurrency). If branches must wait (timer, signal, child), the run suspends
        after every other branch has gone as far as it can."""
        key = self._next_key()  # a position only: gather itself writes nothing

        async def branch(index: int, aw: Awaitable[Any]) -> Any:
            _scope.set(_Scope(f"{key}:{index}."))
            return await aw

        tasks = [asyncio.ensure_future(branch(i, aw)) for i, aw in enumerate(aws)]
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                failed = [t for t in done if t.exception() is not None
                          and not isinstance(t.exception(), _PAUSES)]
                if failed:
                    for t in pending:
                        t.cancel(SIBLING_FAILED)
                    await asyncio.gather(*pending, return_exceptions=True)
                    first = min(failed, key=tasks.index)
                    raise first.exception()  # type: ignore[misc]
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        outcomes = [t.exception() for t in tasks]
        if any(isinstance(e, Drain) for e in outcomes):
            raise Drain()
        doubts = [e for e in outcomes if isinstance(e, InDoubt)]
        if doubts:  # a human decides one step at a time; the others are asked for next
            raise doubts[0]
        suspends = [e for e in outcomes if isinstance(e, Suspend)]
        if suspends:
            raise Suspend.merge(suspends)
        return [t.result() for t in tasks]

    # -- higher-level effects (implemented by their own packages) --------------------------
    async def exec(self, code: str | Sequence[str], **kwargs: Any) -> Any:
        """Run code (or a command list) in an ephemeral sandbox, journaled; the run's workspace
        persists between execs as artifacts. Keywords: `language` ("python" | "bash"),
        `backend` ("bwrap" | "gvisor"), `timeout`, `limits`, `files`, `stdin`, `env`.
        See `tether.sandbox`."""
        from tether.sandbox.effect import exec_effect

        return await exec_effect(self, code, **kwargs)

    async def model(self, model: Any, messages: Any, **kwargs: Any) -> Any:
        """Call a language model, journaled (see `tether.models`)."""
        from tether.models.effect import model_effect

        return await model_effect(self, model, messages, **kwargs)

    async def tool(self, tools: Any, name: str | None = None,
                   arguments: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call a tool from a registry (or a single tool), journaled and checked by the
        interceptors; `version=` pins a version. See `tether.tools`."""
        from tether.tools.effect import tool_effect

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


def _activity_error(name: str, key: str, data: dict[str, Any]) -> ActivityError:
    return ActivityError(name, data.get("type", "Error"), data.get("message", ""), key)


def _child_outcome(child_id: str, data: dict[str, Any]) -> Any:
    if data["status"] == "succeeded":
        return data.get("result")
    raise ChildFailed(child_id, data["status"], data.get("error"))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
