"""One OpenAPI call on the wire: redirects followed by hand, the body read within a bound, and
the answer decoded into a tool result or a clear error.

The server is untrusted as much as the spec is. httpx, left to itself, reads a body of any size
into memory (a 1 GB stream, or a few MB of gzip that inflate to gigabytes) and, following a
redirect to another host, strips ``Authorization`` but forwards every other header, so an API key
sent as ``X-API-Key`` or a cookie reached whichever host the API redirected to. Here each hop is
sent separately: on a hop to another origin only the headers that carry no credentials go along.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

from tether.tools._errors import ToolExecutionError

#: Default cap on a response body (after Content-Encoding is undone).
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
# what an error message quotes of an error body; the rest is not read
_ERROR_BODY_BYTES = 64 * 1024
# headers a request to another origin keeps: none of them can carry a credential
_NEUTRAL = frozenset({
    "host", "accept", "accept-encoding", "accept-language", "connection", "user-agent",
    "content-type", "content-length", "transfer-encoding",
})


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


async def send(
    tool: str,
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    follow: bool,
    max_bytes: int,
    **kwargs: Any,
) -> tuple[httpx.Response, bytes]:
    """Send the request (following redirects by hand when `follow`); return the final response
    and its body, read up to `max_bytes`."""
    request = client.build_request(method, url, **kwargs)
    first = _origin(request.url)
    hops = 0
    while True:
        same = _origin(request.url) == first
        response = await client.send(
            request, stream=True, follow_redirects=False,
            **({} if same else {"auth": None}),  # the client's auth is for the API's origin
        )
        try:
            if not (follow and response.has_redirect_location):
                limit = max_bytes if response.status_code < 400 else _ERROR_BODY_BYTES
                return response, await _read(tool, method, request.url, response, limit)
            hops += 1
            if hops > client.max_redirects:
                raise ToolExecutionError(tool, (
                    f"{method} {url}: more than {client.max_redirects} redirects (last to "
                    f"{response.headers['location']!r}); the request was not completed"),
                    status=response.status_code)
            request = _next_hop(client, request, response, first, kwargs)
        finally:
            await response.aclose()


def _next_hop(
    client: httpx.AsyncClient,
    request: httpx.Request,
    response: httpx.Response,
    first: tuple[str, str, int | None],
    kwargs: dict[str, Any],
) -> httpx.Request:
    target = request.url.join(response.headers["location"])
    method = request.method
    if (response.status_code == 303 and method != "HEAD") or (
        response.status_code in (301, 302) and method == "POST"
    ):
        method = "GET"  # as browsers and httpx do; the body is not sent again
    again = {k: v for k, v in kwargs.items() if k in ("headers", "cookies")}
    if method == request.method:
        again.update({k: v for k, v in kwargs.items() if k in ("json", "content")})
    nxt = client.build_request(method, target, **again)
    if _origin(target) != first:
        for name in list(nxt.headers.keys()):
            if name.lower() not in _NEUTRAL:
                del nxt.headers[name]
    return nxt


async def _read(
    tool: str, method: str, url: httpx.URL, response: httpx.Response, limit: int
) -> bytes:
    declared = response.headers.get("content-length", "")
    if response.status_code < 400 and declared.isdigit() and int(declared) > limit and (
        "content-encoding" not in response.headers
    ):
        raise _too_large(tool, method, url, response, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if response.status_code >= 400:  # an error body is only quoted: keep its start
                chunks.append(chunk[: limit - (size - len(chunk))])
                break
            raise _too_large(tool, method, url, response, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(
    tool: str, method: str, url: httpx.URL, response: httpx.Response, limit: int
) -> ToolExecutionError:
    return ToolExecutionError(tool, (
        f"HTTP {response.status_code} from {method} {url}: the response body is larger than "
        f"{limit:,} bytes (max_response_bytes) and was not read further. The operation ran; "
        "only its result is lost: do not call it again for the same purpose, ask for less "
        "(filters, paging) instead"), status=response.status_code)


def _not_json(name: str) -> Any:
    # Python's json reads NaN and Infinity; the journal would store them as null, silently
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: the journal would store null, silently
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


def decode(tool: str, method: str, path: str, response: httpx.Response, body: bytes) -> Any:
    """The tool's result: parsed JSON for a JSON media type, text otherwise, None when empty."""
    if not body:
        return None
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            return json.loads(body, parse_constant=_not_json, parse_float=_finite)
        except (ValueError, RecursionError) as e:
            why = ("it nests too deeply" if isinstance(e, RecursionError)
                   else f"{type(e).__name__}: {e}")
            raise ToolExecutionError(tool, (
                f"HTTP {response.status_code} from {method} {path}: the body is declared "
                f"{ctype} but is not valid JSON ({why}); it starts {body[:200]!r}. The "
                "operation ran; only its result is unreadable: do not call it again for the "
                "same purpose"), status=response.status_code) from None
    return body.decode(response.encoding or "utf-8", errors="replace")
