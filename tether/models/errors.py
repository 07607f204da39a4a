"""Model-layer exceptions: each failure mode has its own class and a message that says what to do.

`transient` tells the retry/fallback wrappers whether trying again can help.
"""

from __future__ import annotations

from typing import Any


class ModelError(Exception):
    """Base class for every error raised by `tether.models`."""

    transient: bool = False

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


class ModelConnectionError(ModelError):
    """The endpoint could not be reached (refused, DNS, TLS)."""

    transient = True


class ModelTimeoutError(ModelError):
    """The endpoint accepted the request but did not answer in time."""

    transient = True


class ModelHTTPError(ModelError):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, message: str, *, status_code: int, body: str = "", model: str | None = None):
        super().__init__(message, model=model)
        self.status_code = status_code
        self.body = body
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


def http_error(status_code: int, body: str, *, url: str, model: str | None) -> ModelHTTPError:
    snippet = body[:500]
    kind: type[ModelHTTPError]
    if status_code == 429:
        kind, hint = ModelRateLimitError, "rate limited"
    elif status_code >= 500:
        kind, hint = ModelServerError, "server error"
    else:
        kind = ModelClientError
        hint = {
            401: "check the API key",
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
    )


def describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 300 else text[:300] + "..."
