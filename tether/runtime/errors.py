"""Errors the runtime raises to agents, callers and operators.

Control-flow signals that must never be swallowed by an agent's `except Exception` (suspension,
in-doubt, halt) derive from BaseException on purpose, like asyncio.CancelledError.
"""

from __future__ import annotations

from typing import Any

#: the longest error text (an exception's message, a traceback) a run keeps: an HTTP error
#: body of megabytes as a message made every `tether runs` print it, and `run_failed` held it
#: three times over
ERROR_TEXT_MAX = 16_384


def clipped(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    """`text` cut to `limit` characters (its start and end: where a message and a traceback
    say the most), with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return (f"{text[:head]} [... cut: {len(text) - head - tail:,} of {len(text):,} characters; "
            f"the run keeps {limit:,} ...] {text[-tail:]}")


class TetherError(Exception):
    """Base class for errors a Tether user is expected to handle or read."""


class RunNotFound(TetherError):
    def __init__(self, run_id: str, where: str = "") -> None:
        loc = f" in {where}" if where else ""
        super().__init__(
            f"no run with id {run_id!r}{loc}; list runs with `tether runs` "
            "(or check --db/TETHER_DB)"
        )
        self.run_id = run_id


class InvalidInput(TetherError):
    """Input a caller gave Tether is malformed; the message says where and how to fix it."""


class AgentNotFound(TetherError):
    """An agent reference `module:function` (or `path.py:function`) cannot be resolved."""


class RunNotDeletable(TetherError):
    """`Tether.delete` of a run that is not the root of a finished tree: a tree is deleted
    whole (a parent's journal names its children) and only once nothing in it can change."""

    def __init__(self, run_id: str, why: str) -> None:
        super().__init__(f"run {run_id!r} cannot be deleted: {why}")
        self.run_id = run_id


class RunFinished(TetherError):
    """An operation that needs a live run (signal, resolve) was aimed at a finished run."""

    def __init__(self, run_id: str, status: str, what: str) -> None:
        super().__init__(f"run {run_id!r} already finished ({status}); cannot {what}")
        self.run_id = run_id
        self.status = status


class NotInDoubt(TetherError):
    """`resolve` was asked for a run that has no in-doubt step to decide."""


class ActivityError(TetherError):
    """A journaled step failed. Raised identically live and on replay (from the journal), so agent
    code that catches it behaves the same both times."""

    def __init__(self, step: str, error_type: str, message: str, key: str | None = None) -> None:
        super().__init__(f"step {step!r} failed: {error_type}: {message}")
        self.step = step
        self.error_type = error_type
        self.message = message
        self.key = key


class ChildFailed(TetherError):
    def __init__(self, child_id: str, status: str, error: str | None) -> None:
        super().__init__(f"child run {child_id!r} ended {status}: {error or 'no error recorded'}")
        self.child_id = child_id
        self.status = status
        self.error = error


class DepthLimitExceeded(TetherError):
    def __init__(self, depth: int, limit: int, run_id: str) -> None:
        super().__init__(
            f"run {run_id!r} at depth {depth} may not spawn a child: the maximum depth is {limit} "
            "(raise max_depth for the run if this recursion is intended)"
        )
        self.depth = depth
        self.limit = limit


class SignalTimeout(TetherError, TimeoutError):
    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"no signal {name!r} arrived within {timeout:g}s")
        self.name = name


class NonDeterminismError(TetherError):
    """The agent's code no longer matches its journal at a given step. Names the step and both
    sides so the author can see what changed."""

    def __init__(self, run_id: str, key: str, recorded: str, current: str) -> None:
        super().__init__(
            f"non-determinism in run {run_id!r} at step {key}: the journal recorded {recorded}, "
            f"but the code now does {current}. Agent code must make the same ctx calls in the same "
            "order on replay; use ctx.now()/ctx.random() instead of time/random, and version "
            "changed agents instead of editing them under running runs."
        )
        self.run_id = run_id
        self.key = key
        self.recorded = recorded
        self.current = current


class NotSerializable(TetherError):
    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} is not JSON-serializable ({detail}); return plain JSON data")


class ShortCircuit(Exception):
    """Raised by an interceptor's `before` to answer a step without running it (a denied call
    returned as an observation, a honeypot's simulated success, an open circuit breaker). The
    runtime journals the step as completed with `result`, so replay returns the same answer."""

    def __init__(self, result: Any, meta: dict[str, Any] | None = None) -> None:
        super().__init__("step answered by an interceptor")
        self.result = result
        self.meta = meta or {}


# -- control flow (BaseException: agent code cannot swallow these by accident) -----------------


class Suspend(BaseException):
    """The run cannot progress until something happens (timer, signal, child). The worker releases
    the run; the store wakes it when the condition holds."""

    def __init__(
        self,
        reason: str,
        *,
        wake_at: float | None = None,
        children: tuple[str, ...] = (),
        signals: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wake_at = wake_at
        self.children = children
        self.signals = signals

    @staticmethod
    def merge(items: list[Suspend]) -> Suspend:
        wakes = [s.wake_at for s in items if s.wake_at is not None]
        return Suspend(
            "; ".join(s.reason for s in items),
            wake_at=min(wakes) if wakes else None,
            children=tuple(c for s in items for c in s.children),
            signals=tuple(n for s in items for n in s.signals),
        )


class InDoubt(BaseException):
    """A non-idempotent step was started but its outcome is unknown: a human must decide."""

    def __init__(self, run_id: str, key: str, step: str, seq: int) -> None:
        super().__init__(
            f"step {step!r} (key {key}, event {seq}) was started but its outcome is unknown — the "
            "worker stopped while it ran and the step is not idempotent, so Tether will not run it "
            f"again on its own. Decide with: tether resolve {run_id} --retry | --skip | --fail"
        )
        self.key = key
        self.step = step


class Drain(BaseException):
    """The worker is shutting down: stop before the next effect; the run goes back to the queue
    with its journal intact, and another worker continues it by replay."""


class RunHalted(BaseException):
    """A guard stopped the run (budget, loop, policy). The reason names the guard and figures."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}
