"""Argument predicates used by policy rules.

Each check returns `(ok, why)`. They are written against hostile input: the model chooses the
argument values, so a check must fail closed on anything it does not understand (wrong type,
missing argument, unparsable URL, SQL it cannot classify).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tether.guards._sqlcheck import sql_read_only  # `sql: read_only`, judged in its module

_MISSING = object()


def path_under(value: str, prefix: str) -> tuple[bool, str]:
    """Lexical containment; `..` and duplicate slashes are normalised before comparing.

    Symlinks are not resolved here (the gateway does not see the sandbox's filesystem); the
    sandbox's mount layout is what makes this check sufficient.
    """
    if "\x00" in value:
        return False, "path contains a NUL byte"
    base = posixpath.normpath("/" + prefix.strip("/")) if prefix != "/" else "/"
    full = value if value.startswith("/") else posixpath.join(base, value)
    norm = posixpath.normpath(full)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if base == "/" or norm == base or norm.startswith(base + "/"):
        return True, f"{norm} is under {base}"
    return False, f"{norm} is outside {base}"


def host_of(url: str) -> str | None:
    """The lower-cased host of an http(s) URL, or None when it is not one we can vouch for."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host.rstrip(".").lower()


def domain_allowed(host: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """`example.com` matches only itself; `*.example.com` matches subdomains (not the apex)."""
    return any(fnmatch.fnmatchcase(host, p.lower().rstrip(".")) for p in patterns)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _op_equals(v: Any, arg: Any) -> tuple[bool, str]:
    return (v == arg), f"{v!r} {'==' if v == arg else '!='} {arg!r}"


def _op_in(v: Any, arg: Any) -> tuple[bool, str]:
    ok = any(v == a and type(v) is type(a) for a in arg)
    return ok, f"{v!r} {'in' if ok else 'not in'} {arg!r}"


def _op_not_in(v: Any, arg: Any) -> tuple[bool, str]:
    ok, _ = _op_in(v, arg)
    return (not ok), f"{v!r} {'in' if ok else 'not in'} {arg!r}"


def _op_regex(v: Any, arg: re.Pattern[str]) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    ok = arg.fullmatch(v) is not None
    return ok, f"{'matches' if ok else 'does not match'} /{arg.pattern}/"


def _op_not_regex(v: Any, arg: re.Pattern[str]) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    ok = arg.search(v) is None
    return ok, f"{'does not contain' if ok else 'contains'} /{arg.pattern}/"


def _op_prefix(v: Any, arg: str) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    ok = v.startswith(arg)
    return ok, f"{'starts' if ok else 'does not start'} with {arg!r}"


def _op_path_under(v: Any, arg: str) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    return path_under(v, arg)


def _op_sql(v: Any, arg: str) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    return sql_read_only(v)


def _op_min(v: Any, arg: float) -> tuple[bool, str]:
    n = _num(v)
    if n is None:
        return False, f"{v!r} is not a number"
    return n >= arg, f"{v!r} {'>=' if n >= arg else '<'} {arg!r}"


def _op_max(v: Any, arg: float) -> tuple[bool, str]:
    n = _num(v)
    if n is None:
        return False, f"{v!r} is not a number"
    return n <= arg, f"{v!r} {'<=' if n <= arg else '>'} {arg!r}"


def _op_max_length(v: Any, arg: int) -> tuple[bool, str]:
    if not isinstance(v, str | list | dict):
        return False, f"{type(v).__name__} has no length"
    return len(v) <= arg, f"length {len(v)} {'<=' if len(v) <= arg else '>'} {arg}"


def _op_domain_in(v: Any, arg: list[str]) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    host = host_of(v)
    if host is None:
        return False, f"{v!r} is not an http(s) URL"
    ok = domain_allowed(host, arg)
    return ok, f"host {host} {'is' if ok else 'is not'} in {arg!r}"


# name -> (check, expected YAML type of the operand, description for `policy check`)
OPERATORS: dict[str, tuple[Callable[[Any, Any], tuple[bool, str]], str]] = {
    "equals": (_op_equals, "any"),
    "in": (_op_in, "list"),
    "not_in": (_op_not_in, "list"),
    "regex": (_op_regex, "regex"),
    "not_regex": (_op_not_regex, "regex"),
    "prefix": (_op_prefix, "str"),
    "path_under": (_op_path_under, "str"),
    "sql": (_op_sql, "sql"),
    "min": (_op_min, "number"),
    "max": (_op_max, "number"),
    "max_length": (_op_max_length, "int"),
    "domain_in": (_op_domain_in, "strlist"),
}


def lookup(args: Any, dotted: str) -> Any:
    """`a.b.0` into nested dicts/lists; `_MISSING` when absent."""
    cur = args
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def is_missing(value: Any) -> bool:
    return value is _MISSING


def iter_urls(value: Any) -> list[str]:
    """Every string in a JSON value that looks like it carries a scheme (`x://`)."""
    found: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "://" in v or v.lower().startswith(("http:", "https:", "//")):
                found.append(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return found
