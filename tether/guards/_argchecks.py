"""Argument predicates used by policy rules.

Each check returns `(ok, why)`, where `ok` is True, False or None: None means the condition
cannot be evaluated on this value (a missing argument, a value of a type the condition does not
apply to, a path that cannot be resolved). The policy counts None as a match for `deny` and
`approve` rules and as no match for `allow` rules, so whatever a check does not understand fails
closed. They are written against hostile input: the model chooses the argument values.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable
from typing import Any

from tether.guards._sqlcheck import sql_read_only  # `sql: read_only`, judged in its module
from tether.guards.egress import UnsafeURL, cached_policy, target_of

_MISSING = object()

Check = tuple[bool | None, str]  # (True / False / None = cannot be evaluated, why)
_MAX_SYMLINKS = 40  # what Linux allows in one path lookup (ELOOP beyond)


class UnresolvablePath(ValueError):
    """A path whose target cannot be determined: a NUL byte, a symlink loop."""


def resolve_path(value: str, base: str | None = None) -> str:
    """The absolute path `open(value)` reaches from `base` (default: this process's working
    directory, which is where a tool opens a relative path), with every symlink followed and
    `..` collapsed the way the kernel walks it: a link's target first, then its parent.

    Components that do not exist (yet) are kept as they are. The result names no symlink
    that existed when it was computed, so a tool handed this path opens the file that was
    judged even if a link on the way is re-pointed later; only a component replaced by a link
    between this call and the tool's `open` can still redirect it (see docs/security.md)."""
    if "\x00" in value:
        raise UnresolvablePath("the path contains a NUL byte")
    if not value.startswith("/") and base is None:
        try:
            base = os.getcwd()
        except OSError as exc:
            raise UnresolvablePath(f"relative, and the working directory is gone ({exc})") \
                from None
    start = value if value.startswith("/") else os.path.join(base or "/", value)
    todo = [p for p in reversed(start.split("/")) if p not in ("", ".")]
    resolved, links = "/", 0
    while todo:
        part = todo.pop()
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:  # absent (or unreadable): nothing to follow, the name stays
            resolved = candidate
            continue
        if not is_link:
            resolved = candidate
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise UnresolvablePath(f"too many levels of symbolic links at {candidate}")
        try:
            target = os.readlink(candidate)
        except OSError as exc:
            raise UnresolvablePath(f"cannot read the symbolic link {candidate}: {exc}") \
                from None
        if target.startswith("/"):
            resolved = "/"
        todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
    return resolved


def path_under(value: str, prefix: str) -> Check:
    """Whether the file `value` names (resolved: symlinks followed, `..` collapsed, relative to
    the working directory) lies under `prefix` (resolved too). None when it cannot be resolved.
    """
    try:
        path = resolve_path(value)
        base = resolve_path(prefix)
    except UnresolvablePath as exc:
        return None, f"{value!r} under {prefix!r}: {exc}"
    if base == "/" or path == base or path.startswith(base + "/"):
        return True, f"{path} is under {base}"
    return False, f"{path} is outside {base}"


def _num(value: Any) -> float | None:
    """A finite real number; None for anything else (bools, strings, NaN, infinities)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _scalar_kind(value: Any) -> str | None:
    """The JSON kind of a scalar a tool may coerce into another kind: `"1"`, `1.0` and `True`
    can all become the integer 1."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str" if isinstance(value, str) else None


def _same(v: Any, a: Any) -> bool | None:
    """JSON equality: numbers by value (1 == 1.0), a bool only equal to a bool, containers
    element by element. None when `v` is a scalar of another kind than `a` (`"1"` against 1):
    equality cannot be decided without knowing what the tool will make of it."""
    if isinstance(v, dict) and isinstance(a, dict):
        if v.keys() != a.keys():
            return False
        return _decided_by((_same(v[k], a[k]) for k in v), False)
    if isinstance(v, list) and isinstance(a, list):
        if len(v) != len(a):
            return False
        return _decided_by((_same(x, y) for x, y in zip(v, a, strict=True)), False)
    kv, ka = _scalar_kind(v), _scalar_kind(a)
    if kv is not None and ka is not None and kv != ka:
        return None
    if kv == "number" and ka == "number":
        return bool(float(v) == float(a))
    return type(v) is type(a) and bool(v == a)


def _decided_by(results: Any, decisive: bool) -> bool | None:
    """`decisive` if any result is, else None if any is None, else `not decisive`: three-valued
    `all` (decisive=False) and `any` (decisive=True)."""
    out: bool | None = not decisive
    for r in results:
        if r is decisive:
            return decisive
        if r is None:
            out = None
    return out


def _op_equals(v: Any, arg: Any) -> Check:
    ok = _same(v, arg)
    if ok is None:
        return None, f"{v!r} and {arg!r} are of different types"
    return ok, f"{v!r} {'==' if ok else '!='} {arg!r}"


def _op_in(v: Any, arg: Any) -> Check:
    ok = _decided_by((_same(v, a) for a in arg), True)
    if ok is None:
        return None, f"{v!r} cannot be compared with every item of {arg!r}"
    return ok, f"{v!r} {'in' if ok else 'not in'} {arg!r}"


def _op_not_in(v: Any, arg: Any) -> Check:
    ok, why = _op_in(v, arg)
    return (None if ok is None else not ok), why


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


def _op_path_under(v: Any, arg: str) -> Check:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    return path_under(v, arg)


def _op_sql(v: Any, arg: str) -> tuple[bool, str]:
    if not isinstance(v, str):
        return False, f"{type(v).__name__} is not a string"
    return sql_read_only(v)


def _op_min(v: Any, arg: float) -> Check:
    n = _num(v)
    if n is None:
        return None, f"{v!r} is not a finite number"
    return n >= arg, f"{v!r} {'>=' if n >= arg else '<'} {arg!r}"


def _op_max(v: Any, arg: float) -> Check:
    n = _num(v)
    if n is None:
        return None, f"{v!r} is not a finite number"
    return n <= arg, f"{v!r} {'<=' if n <= arg else '>'} {arg!r}"


def _op_max_length(v: Any, arg: int) -> tuple[bool, str]:
    if not isinstance(v, str | list | dict):
        return False, f"{type(v).__name__} has no length"
    return len(v) <= arg, f"length {len(v)} {'<=' if len(v) <= arg else '>'} {arg}"


def _op_domain_in(v: Any, arg: list[str]) -> Check:
    """The URL's host and port against entries written like `egress.allow` (a name without a
    port means the scheme's default port). A URL that cannot be vouched for cannot be judged."""
    if not isinstance(v, str):
        return None, f"{type(v).__name__} is not a string"
    try:
        target = target_of(v)
    except UnsafeURL as exc:
        return None, str(exc)
    ok, why = cached_policy(tuple(arg), "domain_in").check(v)
    return ok, why if ok else f"{target} is not in {arg!r}"


# name -> (check, expected YAML type of the operand, description for `policy check`)
OPERATORS: dict[str, tuple[Callable[[Any, Any], Check], str]] = {
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


# operator -> the values it can judge; any other value cannot be evaluated (None)
_APPLIES_TO: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{op: ("a string", lambda v: isinstance(v, str))
       for op in ("regex", "not_regex", "prefix", "path_under", "sql", "domain_in")},
    "min": ("a finite number", lambda v: _num(v) is not None),
    "max": ("a finite number", lambda v: _num(v) is not None),
    "max_length": ("a string, list or object", lambda v: isinstance(v, str | list | dict)),
}


def check(op: str, value: Any, operand: Any) -> Check:
    """Evaluate one condition; None when the value is missing or of a type `op` cannot judge."""
    if value is _MISSING:
        return None, "missing"
    applies = _APPLIES_TO.get(op)
    if applies is not None and not applies[1](value):
        return None, f"{type(value).__name__} {value!r} is not {applies[0]}"
    return OPERATORS[op][0](value, operand)


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


def replace_at(args: Any, dotted: str, value: Any) -> Any:
    """A copy of `args` with the value at `a.b.0` replaced (it must exist: see `lookup`)."""
    head, _, rest = dotted.partition(".")
    if isinstance(args, dict):
        return {**args, head: replace_at(args[head], rest, value) if rest else value}
    items = list(args)
    items[int(head)] = replace_at(items[int(head)], rest, value) if rest else value
    return items


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
