"""Cross-cutting behaviour as models that wrap models: retry, fallback, cost/budget accounting.

Each wrapper is itself a `Model`, so they compose: `CostModel(RetryModel(FallbackModel(a, b)))`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.models._attempts import carry, failed, with_attempts
from tether.models._protocol import Model, ToolChoice
from tether.models.errors import ModelError, ModelOutputError
from tether.models.messages import (
    Message,
    MessageLike,
    ModelAttempt,
    ModelResponse,
    ToolLike,
    Usage,
    as_request,
)
from tether.models.pricing import DEFAULT_PRICING, PricingTable


class WrapperModel(Model):
    def __init__(self, wrapped: Model) -> None:
        self.wrapped = wrapped
        self.name = wrapped.name

    def replayed(self, messages: Sequence[Message], response: ModelResponse) -> None:
        """A wrapper adds behaviour, not a script of its own: the wrapped model catches up."""
        self.wrapped.replayed(messages, response)

    async def aclose(self) -> None:
        await self.wrapped.aclose()


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.transient


class RetryModel(WrapperModel):
    """Retries transient errors (connection, timeout, 429, 5xx, unusable body) with backoff.

    Delay before retry n (1-based) is `min(max_delay, initial_delay * multiplier**(n-1))`, and with
    jitter a uniform draw from [delay/2, delay] so that many clients do not retry in lock-step.
    A `Retry-After` the server sent (`ModelHTTPError.retry_after`) lengthens the delay, capped at
    `max_delay`.

    Around a `FallbackModel` it retries the whole chain when at least one of the chain's errors
    is one `retry_on` accepts (a model that was only overloaded may answer next time), waiting
    at least the longest `Retry-After` among them. When a try failed, the response lists every
    try (`ModelResponse.attempts`).
    """

    def __init__(
        self,
        wrapped: Model,
        *,
        max_attempts: int = 4,
        initial_delay: float = 0.5,
        multiplier: float = 2.0,
        max_delay: float = 20.0,
        jitter: bool = True,
        retry_on: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(wrapped)
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.multiplier = multiplier
        self.max_delay = max_delay
        self.jitter = jitter
        self.retry_on = retry_on
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.delays: list[float] = []  # what was slept, for tests and tracing

    def delay_for(self, retry: int) -> float:
        delay = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        if self.jitter:
            delay = self._rng.uniform(delay / 2, delay)
        return delay

    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        msgs, tls = as_request(messages, tools)
        tried: list[ModelAttempt] = []
        for attempt in range(1, self.max_attempts + 1):
            started = time.monotonic()
            try:
                response = await self.wrapped.complete(
                    msgs,
                    tools=tls,
                    output_schema=output_schema,
                    tool_choice=tool_choice,
                    **params,
                )
            except BaseException as exc:
                if attempt == self.max_attempts or not self.retryable(exc):
                    carry(exc, tried, self.wrapped, started)
                    raise
                tried += failed(self.wrapped, exc, started)
                delay = self.delay_for(attempt)
                asked = getattr(exc, "retry_after", None)
                if isinstance(asked, int | float) and asked >= 0:
                    # the server's Retry-After, but never past max_delay (a hostile 1e9 must
                    # not park the worker for 30 years)
                    delay = max(delay, min(float(asked), self.max_delay))
                self.delays.append(delay)
                await self._sleep(delay)
                continue
            return with_attempts(response, tried, self.wrapped, started)
        raise AssertionError("unreachable")

    def retryable(self, exc: BaseException) -> bool:
        """`retry_on`, asked of a fallback chain's errors too: `AllModelsFailedError` itself
        is no transient condition, but a chain whose models were only overloaded or unreachable
        may well answer when tried again."""
        if self.retry_on(exc):
            return True
        return isinstance(exc, AllModelsFailedError) and any(
            self.retryable(e) for _, e in exc.errors
        )


class AllModelsFailedError(ModelError):
    """Every model of a `FallbackModel` failed; `errors` lists (model name, exception).

    Transient when any of the errors is (trying the chain again can help), and `retry_after` is
    the longest wait any transient one asked for: a retry re-runs the whole chain, so it calls
    again every model that asked to be left alone for a while."""

    def __init__(
        self,
        errors: list[tuple[str, BaseException]],
        attempts: list[ModelAttempt] | None = None,
    ) -> None:
        detail = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors)
        super().__init__(f"all {len(errors)} models failed: {detail}")
        self.errors = errors
        self.model_attempts = list(attempts or [])
        self.transient = any(is_transient(e) for _, e in errors)
        waits = [
            float(w)
            for _, e in errors
            if is_transient(e)
            and isinstance(w := getattr(e, "retry_after", None), int | float)
            and not isinstance(w, bool)
            and w >= 0
        ]
        self.retry_after: float | None = max(waits) if waits else None


def _default_fallback_on(exc: BaseException) -> bool:
    # An invalid output is the caller's feedback loop's business, not a reason to switch models.
    return isinstance(exc, ModelError) and not isinstance(exc, ModelOutputError)


class FallbackModel(Model):
    """Tries each model in order; moves on when one raises an error `fallback_on` accepts."""

    def __init__(
        self,
        primary: Model,
        *fallbacks: Model,
        fallback_on: Callable[[BaseException], bool] = _default_fallback_on,
    ) -> None:
        if not fallbacks:
            raise ValueError("FallbackModel needs at least one fallback model")
        self.models = [primary, *fallbacks]
        self.fallback_on = fallback_on
        self.name = "fallback:" + ",".join(m.name for m in self.models)

    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        msgs, tls = as_request(messages, tools)
        errors: list[tuple[str, BaseException]] = []
        tried: list[ModelAttempt] = []
        for model in self.models:
            started = time.monotonic()
            try:
                response = await model.complete(
                    msgs,
                    tools=tls,
                    output_schema=output_schema,
                    tool_choice=tool_choice,
                    **params,
                )
            except Exception as exc:
                if not self.fallback_on(exc):
                    carry(exc, tried, model, started)
                    raise
                errors.append((model.name, exc))
                tried += failed(model, exc, started)
                continue
            return with_attempts(response, tried, model, started)
        raise AllModelsFailedError(errors, tried)

    def replayed(self, messages: Sequence[Message], response: ModelResponse) -> None:
        """The model that gave the journaled answer catches up: the one the last journaled
        attempt names, else the one whose name the response carries, else the primary (the one
        that answers when nothing fails). (A provider's `response.model` is its own id, e.g.
        `gpt-4o-mini`, not `openai:gpt-4o-mini`: the attempt is what names a fallback.)"""
        names = [a.model for a in response.attempts[-1:]] + [response.model]
        named = [m for name in names if name for m in self.models if m.name == name]
        (named or self.models)[0].replayed(messages, response)

    async def aclose(self) -> None:
        for m in self.models:
            await m.aclose()


class BudgetExceededError(ModelError):
    """The accumulated cost reached the budget; no further call is made."""


@dataclass
class UsageTracker:
    """Running totals across calls, per model name."""

    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    by_model: dict[str, Usage] = field(default_factory=dict)

    def record(self, response: ModelResponse) -> None:
        self.calls += 1
        self.usage = self.usage + response.usage
        if response.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += response.cost_usd
        self.by_model[response.model] = self.by_model.get(response.model, Usage()) + response.usage


class CostModel(WrapperModel):
    """Prices each response from a `PricingTable` and keeps totals in `.tracker`.

    A response that already has a cost (a provider that reports one) is kept as is. With
    `budget_usd`, a call is refused once the running total has reached the budget.
    """

    def __init__(
        self,
        wrapped: Model,
        *,
        pricing: PricingTable | None = None,
        budget_usd: float | None = None,
        tracker: UsageTracker | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.pricing = pricing or DEFAULT_PRICING
        self.budget_usd = budget_usd
        self.tracker = tracker or UsageTracker()

    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        msgs, tls = as_request(messages, tools)
        if self.budget_usd is not None and self.tracker.cost_usd >= self.budget_usd:
            raise BudgetExceededError(
                f"model budget of ${self.budget_usd:.4f} reached "
                f"(spent ${self.tracker.cost_usd:.4f} over {self.tracker.calls} calls)",
                model=self.name,
            )
        response = await self.wrapped.complete(
            msgs,
            tools=tls,
            output_schema=output_schema,
            tool_choice=tool_choice,
            **params,
        )
        if response.cost_usd is None:
            cost = self.pricing.cost(response.model or self.name, response.usage)
            if cost is not None:
                response = response.model_copy(update={"cost_usd": cost})
        self.tracker.record(response)
        return response
