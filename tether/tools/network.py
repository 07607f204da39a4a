"""HTTP clients for tools that reach the network, following the egress policy on every request.

A tool declares that it reaches the network (`@tool(network=True)`; OpenAPI tools always do).
The guards then check the URLs in its arguments before the call, and, because a server can
redirect an allowed request anywhere, the client the tool uses checks again each request it sends,
every redirect hop included (an httpx `request` event hook runs before each hop).

Which destinations are allowed is the run's policy, which the tool layer does not know (it sits
below the guards): the guards put the policy's check in this context variable when they clear a
call (`set_egress_check`), and the tool runs in the same context right after, so its client finds
it. A sync tool runs in a thread that copies the context, so it finds it too. Without guards no
check is set and the client goes where it is told, as any httpx client would.

The promise covers clients made here (`async_client`, `sync_client`), the client a
`@tool(network=True)` function receives as its `http` parameter, and OpenAPI tools (their own
client, or one passed to `openapi_tools(client=...)`, which gets the hook). A tool that opens
its own sockets or clients is judged on its arguments only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx

from tether.tools._errors import ToolError

#: `(url) -> (allowed, why)`
EgressCheck = Callable[[str], tuple[bool, str]]
_CHECK: ContextVar[EgressCheck | None] = ContextVar("tether_egress_check", default=None)
_HOOKED = "_tether_egress_hook"
ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


class EgressDenied(ToolError):
    """A request to a destination the egress policy does not allow; nothing was sent."""

    kind = "egress_denied"


def set_egress_check(check: EgressCheck | None) -> None:
    """Make `check` judge every request of the tool calls that run next in this context."""
    _CHECK.set(check)


def egress_check() -> EgressCheck | None:
    return _CHECK.get()


def check_url(url: str, method: str = "GET") -> None:
    """Raise `EgressDenied` unless the current egress check allows `url`."""
    check = _CHECK.get()
    if check is None:
        return
    ok, why = check(url)
    if not ok:
        raise EgressDenied(f"egress denied: {method} {url}: {why}")


def _sync_hook(request: httpx.Request) -> None:
    check_url(str(request.url), request.method)


async def _async_hook(request: httpx.Request) -> None:
    check_url(str(request.url), request.method)


def guard_client(client: ClientT) -> ClientT:
    """Install the egress check on `client` (once): every request it sends, each redirect hop
    included, is judged before it leaves."""
    if getattr(client, _HOOKED, False):
        return client
    hook: Any = _async_hook if isinstance(client, httpx.AsyncClient) else _sync_hook
    hooks: dict[str, list[Any]] = dict(client.event_hooks)
    client.event_hooks = {**hooks, "request": [hook, *hooks.get("request", [])]}
    setattr(client, _HOOKED, True)
    return client


def async_client(**options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` under the egress policy; follows redirects (each hop is checked)."""
    return guard_client(httpx.AsyncClient(**{"follow_redirects": True, **options}))


def sync_client(**options: Any) -> httpx.Client:
    """An `httpx.Client` under the egress policy; follows redirects (each hop is checked)."""
    return guard_client(httpx.Client(**{"follow_redirects": True, **options}))
