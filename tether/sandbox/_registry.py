"""Backend names -> backends. Unknown or unavailable names raise; nothing falls back silently."""

from __future__ import annotations

import os
from functools import cache

from tether.sandbox._backend import Backend
from tether.sandbox._bwrap import BwrapBackend
from tether.sandbox._gvisor import GVisorBackend
from tether.sandbox._types import SandboxUnavailable
from tether.sandbox._unsafe import UnsafeLocalBackend

BACKENDS: dict[str, type[Backend]] = {
    "bwrap": BwrapBackend,
    "gvisor": GVisorBackend,
    "unsafe-local": UnsafeLocalBackend,
}
SAFE_BACKENDS = ("bwrap", "gvisor")


def default_backend_name() -> str:
    return os.environ.get("TETHER_SANDBOX_BACKEND", "bwrap")


@cache
def _instance(name: str) -> Backend:
    return BACKENDS[name]()


def get_backend(name: str | None = None, *, check: bool = True) -> Backend:
    name = name or default_backend_name()
    if name not in BACKENDS:
        raise SandboxUnavailable(
            name, "no such sandbox backend", f"use one of: {', '.join(BACKENDS)}"
        )
    backend = _instance(name)
    if check:
        backend.check()
    return backend
