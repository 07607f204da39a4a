"""What a `tools/call` must carry before it becomes a run: values the journal can hold as sent.

A call's arguments and task parameters are written into the run's row (its input, its options).
JSON on the wire can carry what the journal's canonical JSON cannot: integers beyond 64 bits,
and — the SDK's stdio reader accepts them — `NaN` and `Infinity`. Unchecked, an integer too
large made the run's first write fail after its execution had begun, so the client got a
JSON-RPC error with code 0 saying "run ... does not exist: it was never written"; a huge task
`ttl` failed the submission with a bare "Integer exceeds 64-bit range"; and an infinity was
written as `null`, so an agent ran on another input than the one sent. A negative `ttl` was
accepted and echoed back as a retention time. Each is refused here, before anything is written,
with `INVALID_PARAMS` naming the field.
"""

from __future__ import annotations

import math
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

_INT_MIN, _INT_MAX = -(2**63), 2**63  # what the journal's canonical JSON writes
#: the longest task retention a client may ask for, in ms: the largest integer every JSON
#: client reads exactly (JavaScript's `Number.MAX_SAFE_INTEGER`, ~285,000 years)
MAX_TTL_MS = 2**53 - 1


def check_call(name: str, arguments: dict[str, Any], ttl: Any) -> None:
    """Refuse a call of tool `name` whose arguments or task `ttl` the run could not record."""
    where = _not_canonical(arguments)
    if where is not None:
        raise MCPError(INVALID_PARAMS, (
            f"tools/call {name!r}: arguments.{where} is not representable in JSON as the "
            "journal records it (NaN, an infinity, or an integer beyond 64 bits); send a "
            "finite number, or a large integer as a string"))
    if ttl is not None and not 0 <= ttl <= MAX_TTL_MS:
        raise MCPError(INVALID_PARAMS, (
            f"tools/call {name!r}: task.ttl must be between 0 and {MAX_TTL_MS} milliseconds, "
            f"not {ttl}; omit it for no limit"))


def _not_canonical(value: Any) -> str | None:
    """The dotted path of a value canonical JSON would refuse or change, or None.
    Iterative: the SDK's JSON parser bounds nesting, but this must not depend on it."""
    if type(value) is dict and all(map(_plain, value.values())):
        return None  # most calls: an object of scalars, checked without a path per key
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not _INT_MIN <= item < _INT_MAX:
                return where
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where
        elif isinstance(item, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}.{i}" if where else str(i), v) for i, v in enumerate(item))
    return None


def _plain(item: Any) -> bool:
    """A scalar canonical JSON keeps as it is (exact types: a subclass takes the long way)."""
    kind = type(item)
    if kind is str or kind is bool or item is None:
        return True
    if kind is int:
        return bool(_INT_MIN <= item < _INT_MAX)
    return kind is float and math.isfinite(item)
