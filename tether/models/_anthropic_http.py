"""The size cap on Anthropic replies, fitted into the SDK's HTTP client.

The SDK reads response bodies itself (the whole body, then `json.loads`), so a broken or hostile
server, or a proxy in between, could answer with gigabytes, or with a small gzip bomb that
inflates to gigabytes, and the worker would hold it all in memory. A response hook, which the
HTTP client runs before any body is read, swaps the body for one that is decompressed here and
counted as it goes: past the limit, the read fails with the same `ModelResponseError` the
OpenAI-compatible client raises (`too_large`). The hook only needs the client's public API
(`event_hooks`, `Response`, `AsyncByteStream`), of whichever library the SDK uses (`httpx2`
since anthropic 2.x, `httpx` before).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

from tether.models._wire import Wire, redirect_refused, too_large
from tether.models.errors import ModelError

_STREAMS: dict[str, type] = {}  # the capped stream class, per HTTP library


def _library(response: Any) -> ModuleType:
    return importlib.import_module(type(response).__module__.partition(".")[0])


def _capped_stream(lib: ModuleType) -> type:
    """A body stream class of `lib` (its `Response` only reads subclasses of its own)."""
    if lib.__name__ in _STREAMS:
        return _STREAMS[lib.__name__]

    class CappedStream(lib.AsyncByteStream):  # type: ignore[name-defined]
        """The decompressed body, refused once it passes `limit` bytes."""

        def __init__(self, decoding: Any, limit: int, wire: Wire) -> None:
            self._decoding = decoding
            self._limit = limit
            self._wire = wire

        async def __aiter__(self) -> AsyncIterator[bytes]:
            size = 0
            async for chunk in self._decoding.aiter_bytes():
                size += len(chunk)
                if size > self._limit:
                    raise too_large(self._wire, self._limit)
                yield chunk

        async def aclose(self) -> None:
            await self._decoding.aclose()

    _STREAMS[lib.__name__] = CappedStream
    return CappedStream


def cap_responses(http_client: Any, limit: int, model: str,
                  secrets: list[str] | None = None) -> None:
    """Make every response of `http_client` refuse a body over `limit` bytes, decompressed,
    and refuse any redirect (as `OpenAIChatModel` does; `secrets` are redacted from where it
    pointed).

    Idempotent per client: a second call (another model sharing the client) replaces the
    first hook rather than stacking a second count over the same body."""

    async def capped(response: Any) -> None:
        if 300 <= response.status_code < 400 and "location" in response.headers:
            # run before the client follows it: the prompt (and, with the SDKs that send it
            # as `x-api-key`, the key) would go to wherever the Location says
            raise redirect_refused(response.status_code, str(response.request.url),
                                   response.headers["location"], secrets or [], model)
        lib = _library(response)
        # a Response over the raw stream decompresses it, whatever the Content-Encoding
        # (gzip, deflate, br, zstd), exactly as the client itself would
        decoding = lib.Response(
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            request=response.request,
        )
        wire = Wire(str(response.request.url), model)
        response.stream = _capped_stream(lib)(decoding, limit, wire)
        # the body is now handed on decompressed: it must not be decompressed again
        for header in ("content-encoding", "content-length"):
            if header in response.headers:
                del response.headers[header]

    capped.tether_size_cap = True  # type: ignore[attr-defined]
    hooks: dict[str, list[Callable[[Any], Awaitable[None]]]] = dict(http_client.event_hooks)
    kept = [h for h in hooks.get("response", []) if not getattr(h, "tether_size_cap", False)]
    hooks["response"] = [*kept, capped]
    http_client.event_hooks = hooks


def model_error_behind(exc: BaseException) -> ModelError | None:
    """The model error (the size cap's) that the SDK wrapped as a connection error: it turns any
    exception raised while reading a body into `APIConnectionError`."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ModelError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
