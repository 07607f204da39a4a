"""What a model's argument may not contain once it becomes part of an HTTP request.

Query and path values are percent-encoded, so they cannot escape their place. Header and cookie
values are sent as they are: a ``;`` in a cookie value starts another cookie
(``sess=a; admin=1``), CR/LF would start another header, and a non-ASCII character made httpx
raise a bare ``UnicodeEncodeError``. These are argument errors, found before anything is sent,
so the model is told which field to fix.
"""

from __future__ import annotations

import re
from typing import Any

#: Arguments nested deeper than this are refused before jsonschema recurses through them (a
#: recursive schema lets it follow any depth, and it overflows the stack near 900 levels).
MAX_ARGUMENT_DEPTH = 100

# RFC 9110 field-value: visible ASCII, space and tab
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# RFC 6265 cookie-octet: visible ASCII except '"', ',', ';' and '\'
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
# RFC 9110 token: what a header or cookie name may be
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def wire_problem(where: str, value: str) -> str | None:
    """Why `value` cannot be sent as one header/cookie value (None: it can)."""
    if where == "cookie" and not _COOKIE_VALUE.fullmatch(value):
        return ("a cookie value may only hold visible ASCII characters other than "
                "'\"', ',', ';' and '\\' (no spaces): anything else would end this cookie or "
                "start another")
    if where == "header" and not _HEADER_VALUE.fullmatch(value):
        return ("a header value may only hold visible ASCII characters, spaces and tabs: a "
                "line break would start another header, and other characters cannot be sent")
    return None


def too_deep(data: Any) -> bool:
    """Whether `data` nests more than `MAX_ARGUMENT_DEPTH` lists/objects (iteratively: the
    point is not to recurse)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= MAX_ARGUMENT_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
