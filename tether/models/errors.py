"""Model-layer exceptions: each failure mode has its own class and a message that says what to do.

`transient` tells the retry/fallback wrappers whether trying again can help.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any


class ModelError(Exception):
    """Base class for every error raised by `tether.models`."""

    transient: bool = False

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        # the tries a retry or fallback wrapper made before giving up (`ModelAttempt`s), so
        # the wrapper around it can list them all; empty for a single try
        self.model_attempts: list[Any] = []


class ModelConnectionError(ModelError):
    """The endpoint could not be reached (refused, DNS, TLS)."""

    transient = True


class ModelTimeoutError(ModelError):
    """The endpoint accepted the request but did not answer in time."""

    transient = True


class ModelHTTPError(ModelError):
    """The endpoint answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        model: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, model=model)
        self.status_code = status_code
        self.body = body
        # seconds the server asked us to wait (`Retry-After`), already checked to be sane
        self.retry_after = retry_after
        self.transient = status_code in (408, 409, 425, 429) or status_code >= 500


class ModelRateLimitError(ModelHTTPError):
    """HTTP 429: slow down; retried with backoff."""


class ModelServerError(ModelHTTPError):
    """HTTP 5xx: the provider failed; retried with backoff."""


class ModelClientError(ModelHTTPError):
    """HTTP 4xx other than 408/409/425/429: the request is wrong (key, model name, payload)."""


class ModelResponseError(ModelError):
    """The provider answered 2xx but the body is unusable (no choices, not JSON, bad shape)."""

    transient = True


class ModelOutputError(ModelError):
    """The model's output stayed invalid after the allowed feedback rounds.

    `last_output` holds the model's last raw output so the failure can be diagnosed.
    """

    def __init__(
        self,
        message: str,
        *,
        last_output: str | None,
        errors: list[str],
        attempts: int,
        model: str | None = None,
    ) -> None:
        super().__init__(message, model=model)
        self.last_output = last_output
        self.errors = errors
        self.attempts = attempts


class ModelUnavailableError(ModelError):
    """An optional dependency (an extra) or a model file is missing."""


class WeightsError(ModelError):
    """A model file could not be resolved."""


class WeightsHashMismatchError(WeightsError):
    """A model file's sha256 differs from the pinned one: it is never loaded."""

    def __init__(self, path: str, expected: str, actual: str, source: str) -> None:
        super().__init__(
            f"model file {path} (from {source}) has sha256 {actual}, expected {expected}; "
            "refusing to load it. Delete it and resolve again, or pass the right file."
        )
        self.path = path
        self.expected = expected
        self.actual = actual
        self.source = source


# What an echoed credential looks like in an error body: bearer tokens and provider key formats.
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}|\bsk-ant-[A-Za-z0-9_-]{8,}"
)
REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with the given secrets and anything shaped like an API key replaced.

    A provider that echoes the caller's key in an error body (a 401 saying "incorrect API key
    sk-...") must not put it in exception messages, which end up in the journal, logs and the
    UI that viewers read."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None when absent
    or absurd (negative, not finite, unparseable). Callers still cap it at their own maximum."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def http_error(
    status_code: int,
    body: str,
    *,
    url: str,
    model: str | None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    key_hint: str = "check the API key",
) -> ModelHTTPError:
    """The error for an HTTP error status; the body is redacted (see `redact`) before it is
    kept, and `Retry-After` is parsed for the retry wrapper. `key_hint`: what a 401 asks
    the user to check (`api_key_hint`)."""
    body = redact(body, secrets)
    snippet = body[:500]
    kind: type[ModelHTTPError]
    if status_code == 429:
        kind, hint = ModelRateLimitError, "rate limited"
    elif status_code >= 500:
        kind, hint = ModelServerError, "server error"
    else:
        kind = ModelClientError
        hint = {
            401: key_hint,
            403: "the key may not access this model",
            404: "check the base URL and the model name",
        }.get(status_code, "the request was rejected")
        if status_code in (408, 409, 425):
            kind = ModelHTTPError
    return kind(
        f"HTTP {status_code} from {url} ({hint}): {snippet}",
        status_code=status_code,
        body=body,
        model=model,
        retry_after=parse_retry_after((headers or {}).get("retry-after")),
    )


def api_key_hint(given: str | None, env: str, *, from_env: bool) -> str:
    """What a 401 should make the user check: the key, and where it came from. "check the API
    key" alone left a user with no key set wondering which variable the client reads."""
    if not given:
        return f"no API key was sent: set ${env} or pass api_key="
    return f"check the API key in ${env}" if from_env else "check the API key (api_key=)"


def describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 300 else text[:300] + "..."
