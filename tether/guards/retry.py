"""Retries with exponential backoff + jitter, and per-tool circuit breakers.

Attempt numbers come from the journal (`attempts_so_far`), never from a local counter, so a retry
after a worker crash continues the count instead of starting over. Jitter is derived from a seed
(run id + step + attempt) so replay computes the same delay. Time is passed in, never read here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tether.guards.errors import ToolUnavailable


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # total attempts including the first
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 30.0
    jitter: Literal["full", "equal", "none"] = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay_s < 0 or self.factor < 1 or self.max_delay_s < 0:
            raise ValueError("delays must be >= 0 and factor >= 1")

    def should_retry(self, attempts_so_far: int) -> bool:
        """`attempts_so_far` = failed attempts already journaled for this call."""
        return attempts_so_far < self.max_attempts

    def delay(self, attempt: int, seed: str = "") -> float:
        """Delay before attempt number `attempt` (1 = first retry)."""
        if attempt <= 0:
            return 0.0
        cap = min(self.max_delay_s, self.base_delay_s * self.factor ** (attempt - 1))
        if self.jitter == "none":
            return cap
        u = _unit(f"{seed}:{attempt}")
        if self.jitter == "equal":
            return cap / 2 + u * cap / 2
        return u * cap


def _unit(seed: str) -> float:
    """Deterministic uniform [0, 1) from a string."""
    h = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """closed -> (threshold consecutive failures) -> open -> (cooldown) -> half_open
    -> one trial call: success closes, failure re-opens."""

    tool: str
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    _trial_in_flight: bool = False

    def before_call(self, now: float) -> None:
        """Raise ToolUnavailable while open; let exactly one trial through when half-open."""
        if self.state == "open":
            if now - self.opened_at >= self.cooldown_s:
                self.state = "half_open"
                self._trial_in_flight = False
            else:
                raise ToolUnavailable(self.tool, self.cooldown_s - (now - self.opened_at),
                                      self.failures)
        if self.state == "half_open":
            if self._trial_in_flight:
                raise ToolUnavailable(self.tool, 0.0, self.failures)
            self._trial_in_flight = True

    def record_success(self) -> None:
        self.state = "closed"
        self.failures = 0
        self._trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            self.state = "open"
            self.opened_at = now


@dataclass
class BreakerBoard:
    """One breaker per tool name (per worker process; shared by its runs)."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    overrides: dict[str, tuple[int, float]] = field(default_factory=dict)
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, tool: str) -> CircuitBreaker:
        found = self._breakers.get(tool)  # made once per name, under the lock
        if found is not None:
            return found
        with self._lock:
            if tool not in self._breakers:
                threshold, cooldown = self.overrides.get(
                    tool, (self.failure_threshold, self.cooldown_s))
                self._breakers[tool] = CircuitBreaker(tool, threshold, cooldown)
            return self._breakers[tool]

    def states(self) -> dict[str, BreakerState]:
        with self._lock:
            return {k: b.state for k, b in self._breakers.items()}


async def call_with_retry(
    fn: Callable[[int], object],
    policy: RetryPolicy,
    *,
    attempts_so_far: int = 0,
    seed: str = "",
    sleep: Callable[[float], object],
    retryable: Callable[[BaseException], bool] = lambda e: True,
    on_attempt: Callable[[int, BaseException | None], object] | None = None,
) -> object:
    """Generic async retry loop (used standalone; the runtime journals each attempt via
    `on_attempt`). `fn(attempt)` may be sync or async; `sleep` is awaited if it returns one."""
    import inspect

    attempt = attempts_so_far
    while True:
        attempt += 1
        try:
            result = fn(attempt)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            if on_attempt is not None:
                on_attempt(attempt, exc)
            if not retryable(exc) or not policy.should_retry(attempt):
                raise
            pause = sleep(policy.delay(attempt, seed))
            if inspect.isawaitable(pause):
                await pause
            continue
        if on_attempt is not None:
            on_attempt(attempt, None)
        return result
