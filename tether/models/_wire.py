"""Defensive reading of provider replies: a provider's body is input, never trusted.

Every field a provider module reads goes through these helpers, so a wrong type, a negative or
absurd token count, a body that never ends or a decompression bomb becomes a `ModelResponseError`
that names the field and the URL, instead of an `AttributeError` deep in a parser or a hang.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tether.models.errors import (
    ModelClientError,
    ModelResponseError,
    ModelTimeoutError,
    redact,
)

# A token count above this is a lie; it is charged as this many so budgets halt the run, while
# sums of many such calls stay far inside 64-bit integer counters.
MAX_TOKENS = 10**12
# Replies larger than this (after decompression) are refused; a chat reply is kilobytes.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# More tool calls than this in one reply is not a plan but a flood.
MAX_TOOL_CALLS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Wire:
    """Where a reply came from, for error messages: `bad(path, problem)` builds the error."""

    url: str
    model: str

    def bad(self, path: str, problem: str, hint: str = "") -> ModelResponseError:
        hint = hint or (
            "the server is not speaking the expected API (check the base URL and server version)"
        )
        return ModelResponseError(
            f"{self.url} sent an unusable reply: {path} {problem}; {hint}", model=self.model
        )

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.bad(path, f"is {_kind(value)}, expected an object")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(path, f"is {_kind(value)}, expected a list")
        return value

    def text(self, value: Any, path: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise self.bad(path, f"is {_kind(value)}, expected a string")

    def ident(self, value: Any, path: str) -> str:
        """A tool name or call id: a string without control characters (NUL breaks stores and
        terminals, and no real tool is named that way)."""
        text = self.text(value, path) or ""
        if _CONTROL.search(text):
            raise self.bad(path, f"contains control characters: {text[:80]!r}")
        return text

    def tokens(self, value: Any, path: str) -> int:
        """A token count: a non-negative integer (an integral float or a digit string is
        accepted), saturated at `MAX_TOKENS`; anything else is refused rather than charged as 0."""
        if value is None:
            return 0
        if isinstance(value, bool):
            raise self.bad(path, f"is {_kind(value)}, expected a token count")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise self.bad(path, f"is {_kind(value)}, expected a token count")
        if value < 0:
            raise self.bad(path, f"is negative ({value}), a token count cannot be")
        return min(value, MAX_TOKENS)


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def unique_ids(ids: list[str]) -> list[str]:
    """Call ids made unique in order (`a`, `a-2`, ...): tool results are matched to calls by id,
    so duplicates from a buggy server would send a result to the wrong call."""
    used: set[str] = set()
    out = []
    for i in ids:
        new, n = i, 1
        while new in used:
            n += 1
            new = f"{i}-{n}"
        used.add(new)
        out.append(new)
    return out


class Deadline:
    """One overall deadline for a request, however the server paces its bytes.

    httpx's `timeout` bounds each read, so a server sending one byte per second would never trip
    it; every await on the network goes through `wait` instead."""

    def __init__(self, seconds: float, wire: Wire) -> None:
        self.seconds = seconds
        self.wire = wire
        self.at = asyncio.get_running_loop().time() + seconds

    def expired(self) -> ModelTimeoutError:
        return ModelTimeoutError(
            f"{self.wire.url} did not finish its reply within the {self.seconds:g} s timeout "
            "(it answered too slowly or never ended the stream); raise `timeout` or check the "
            "server's load",
            model=self.wire.model,
        )

    async def next(self, it: AsyncIterator[bytes]) -> bytes | None:
        """The next chunk, None at the end; `ModelTimeoutError` once the deadline passes."""
        try:
            async with asyncio.timeout_at(self.at):
                return await anext(it)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise self.expired() from None


async def read_body(resp: httpx.Response, deadline: Deadline, limit: int) -> bytes:
    """The whole (decompressed) body, refused past `limit` bytes, within the deadline."""
    parts: list[bytes] = []
    size = 0
    chunks = resp.aiter_bytes()
    while (chunk := await deadline.next(chunks)) is not None:
        size += len(chunk)
        if size > limit:
            raise too_large(deadline.wire, limit)
        parts.append(chunk)
    return b"".join(parts)


def too_large(wire: Wire, limit: int) -> ModelResponseError:
    err = wire.bad(
        "the body",
        f"is larger than {limit} bytes (decompressed)",
        "refused unread; raise `max_response_bytes` if such replies are legitimate",
    )
    err.transient = False  # a bomb does not defuse itself on retry
    return err


def redirect_refused(status: int, url: str, location: str, secrets: Sequence[str | None],
                     model: str, *, body: str = "") -> ModelClientError:
    """A redirect is never followed, by either client: the request carries the API key and the
    prompt, and the Location may name any host."""
    where = redact(location, secrets)
    return ModelClientError(
        f"HTTP {status} from {url}: a redirect to {where[:200]}, which is not followed (the "
        "request carries the API key and the prompt); set base_url to the API's real root",
        status_code=status, body=redact(body, secrets), model=model)


async def sse_data(resp: httpx.Response, deadline: Deadline, limit: int) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream, with the size cap and deadline."""
    pending: list[bytes] = []  # the current line's pieces (a line may span many chunks)
    size = 0
    chunks = resp.aiter_bytes()
    while (chunk := await deadline.next(chunks)) is not None:
        size += len(chunk)
        if size > limit:
            raise too_large(deadline.wire, limit)
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        first, *lines, rest = chunk.split(b"\n")
        for line in [b"".join([*pending, first]), *lines]:
            if line.startswith(b"data:"):
                yield line[5:].strip().decode("utf-8", errors="replace")
        pending = [rest]
    line = b"".join(pending)
    if line.startswith(b"data:"):
        yield line[5:].strip().decode("utf-8", errors="replace")
