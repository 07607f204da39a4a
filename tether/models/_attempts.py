"""The tries behind one answer, as the retry and fallback wrappers report them.

A wrapper that tried more than once lists every try on the response (`ModelResponse.attempts`),
and the runtime journals the response whole, so an operator reading a model step sees that the
primary failed, with which error and after how long, not just who answered in the end. A failure
carries its tries too (`model_attempts` on the exception), so nested wrappers (a retry around a
fallback, a fallback over retries) give one flat list in the order the calls were made.
"""

from __future__ import annotations

import time
from typing import Any

from tether.models._protocol import Model
from tether.models.errors import ModelError, redact
from tether.models.messages import ModelAttempt, ModelResponse

MAX_ERROR_CHARS = 500  # a journaled reason, not the provider's whole error page


def secrets_of(model: Model) -> list[str]:
    """The API keys held by `model` and the models it wraps: error messages are redacted of
    them (besides anything shaped like a key) before they are journaled."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [model]
    while todo:
        m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        for attr in ("api_key", "_api_key"):
            value = getattr(m, attr, None)
            if isinstance(value, str) and value:
                found.append(value)
        todo.extend(x for x in [getattr(m, "wrapped", None), *getattr(m, "models", [])] if x)
    return found


def _tried(model: Model) -> str:
    """The name of the model a single try of `model` reached: a try that did not list its own
    attempts went to the primary of a fallback (a later model would have listed the failures
    before it) and through a retry or cost wrapper to the model inside."""
    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "wrapped", None) or next(iter(getattr(model, "models", [])), None)
        if not isinstance(inner, Model):
            break
        model = inner
    return model.name


def _elapsed(started: float) -> float:
    return round(max(0.0, time.monotonic() - started), 3)


def failed(model: Model, exc: BaseException, started: float) -> list[ModelAttempt]:
    """The tries a failure of `model` stands for: those it carries (a fallback or retry inside
    failed) or else one, named after `model`, with its redacted error."""
    carried = getattr(exc, "model_attempts", None)
    if isinstance(carried, list) and carried and all(isinstance(a, ModelAttempt) for a in carried):
        return list(carried)
    message = redact(str(exc), secrets_of(model))
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    return [
        ModelAttempt(
            model=_tried(model),
            error_type=type(exc).__name__,
            error=message,
            duration_s=_elapsed(started),
        )
    ]


def answered(model: Model, response: ModelResponse, started: float) -> list[ModelAttempt]:
    """The tries of a call `model` answered: its own list when a wrapper inside made several,
    else the one try."""
    if response.attempts:
        return list(response.attempts)
    return [ModelAttempt(model=_tried(model), duration_s=_elapsed(started))]


def with_attempts(response: ModelResponse, earlier: list[ModelAttempt], model: Model,
                  started: float) -> ModelResponse:
    """`response`, listing the failed tries before it; unchanged when there were none."""
    if not earlier:
        return response
    return response.model_copy(
        update={"attempts": [*earlier, *answered(model, response, started)]}
    )


def carry(exc: BaseException, earlier: list[ModelAttempt], model: Model,
          started: float) -> None:
    """Let a failure that ends a wrapper's tries carry all of them, for the wrapper around it
    (a fallback over a retry lists each retry). Only model errors: others are bugs, not tries."""
    if earlier and isinstance(exc, ModelError):
        exc.model_attempts = [*earlier, *failed(model, exc, started)]
