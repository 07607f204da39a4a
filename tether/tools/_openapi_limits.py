"""Bounds on an OpenAPI document before anything converts it.

A spec comes from whoever publishes the API, so its shape is untrusted: YAML aliases can make a
few hundred bytes expand into billions of nodes ("billion laughs"), an alias can contain itself,
and nesting thousands of levels deep overflows every recursive consumer downstream (the schema
converter, jsonschema, the JSON encoder behind the lock hash). One iterative walk, counting the
document as every consumer will see it (aliases expanded), refuses those shapes up front with a
message saying where, instead of a RecursionError or an out-of-memory kill much later.
"""

from __future__ import annotations

import datetime
from typing import Any

from tether.tools._errors import OpenAPIError

#: Nodes (mappings, lists and scalars) the expanded document may have. The largest public specs
#: (GitHub's, Stripe's, at 6-12 MB of JSON) have well under a million.
MAX_NODES = 3_000_000
#: Nesting depth of mappings and lists. Real specs stay under 40; at 100 the recursive consumers
#: downstream (jsonschema's meta-schema check is the deepest, failing past ~130 levels of
#: ``items``) stay within Python's stack.
MAX_DEPTH = 100


# scalar types a document may hold: JSON's, and the dates a YAML parser makes of unquoted ones
_PLAIN = (str, int, float, bool, type(None), datetime.date)
_INFINITE = (float("inf"), float("-inf"))


def _where(trail: tuple[Any, ...] | None) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    text = "".join(reversed(parts)).lstrip(".")
    return text[:300] + ("..." if len(text) > 300 else "") or "the top level"


def check_document(doc: Any, label: str) -> None:
    """Raise `OpenAPIError` when `doc`, aliases expanded, is too large, too deep or contains
    itself."""
    nodes = 0
    # (node, depth, trail, ids of the containers above it) - trail is a linked list of keys so
    # the path is built only for the error message
    stack: list[tuple[Any, int, tuple[Any, ...] | None, frozenset[int]]] = [
        (doc, 0, None, frozenset())
    ]
    while stack:
        node, depth, trail, above = stack.pop()
        nodes += 1
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if id(node) in above:
            raise OpenAPIError(
                f"OpenAPI spec {label!r}: the value at {_where(trail)} contains itself (a YAML "
                "alias inside its own anchor); such a document never ends. Use a $ref to "
                "'#/components/schemas/...' for recursive schemas"
            )
        if depth >= MAX_DEPTH:
            raise OpenAPIError(
                f"OpenAPI spec {label!r} nests more than {MAX_DEPTH} levels deep (at "
                f"{_where(trail)}); flatten it, or move nested schemas to "
                "'#/components/schemas' and $ref them"
            )
        inside = above | {id(node)}
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (trail, key), inside))
            else:
                nodes += 1
                if not isinstance(child, _PLAIN) or child != child or child in _INFINITE:
                    raise OpenAPIError(
                        f"OpenAPI spec {label!r}: the value at {_where((trail, key))} is "
                        f"{child!r} ({type(child).__name__}), which JSON cannot hold; an "
                        "OpenAPI document is JSON data"
                    )
        if nodes + len(stack) > MAX_NODES:
            raise OpenAPIError(
                f"OpenAPI spec {label!r} is too large: more than {MAX_NODES:,} values once YAML "
                f"aliases are expanded (reached at {_where(trail)}); a document this size is "
                "an alias bomb or not an API description. Remove the repeated aliases or split "
                "the spec"
            )
