"""A tool's contract as the lock records it, the lock file's format, and drift between a
recorded contract and a live one, field by field.

Kept apart from `_lock` (which loads tool sources, MCP servers among them, and writes the lock)
so that a tool source can check its tools against a lock without importing the loader: MCP
servers are checked again when `MCPTools` opens (`MCPTools(lock=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tether.tools._base import Tool
from tether.tools._errors import LockError

LOCK_FORMAT = 1



def lock_entry(t: Tool) -> dict[str, Any]:
    """What the lock records of one tool."""
    return {
        "version": t.version,
        "hash": t.schema_hash,
        "side_effect": t.side_effect,
        "idempotent": t.idempotent,
        "requires_approval": t.requires_approval,
        "critical": t.critical,
        "description": t.description,
        "source": t.source,
        "parameters": t.parameters,
    }


def read_lock(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise LockError(f"lock file {str(p)!r} not found; create it with `tether tools lock`")
    try:
        data = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError as e:
        raise LockError(f"lock file {str(p)!r} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        raise LockError(
            f"lock file {str(p)!r} has an unknown format "
            f"(expected format {LOCK_FORMAT}); regenerate it with `tether tools lock`"
        )
    if not isinstance(data.get("tools"), dict):
        raise LockError(f"lock file {str(p)!r} has no 'tools' mapping")
    return data


# -- drift ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One difference between the lock and a live tool."""

    #: ``tool_added``, ``tool_removed``, ``tool_changed``, ``parameter_added``,
    #: ``parameter_removed``, ``type_changed`` or ``parameter_changed``
    kind: str
    tool: str
    detail: str
    #: dotted parameter path (``address.zip``, ``items[]``) for parameter drifts
    parameter: str | None = None

    def __str__(self) -> str:
        where = f"{self.tool}.{self.parameter}" if self.parameter else self.tool
        return f"{self.kind:18} {where}: {self.detail}"


_CONSTRAINTS = (
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "const",
    "additionalProperties",
)


class _Differ:
    def __init__(self, tool: str, old_root: dict[str, Any], new_root: dict[str, Any]) -> None:
        self.tool = tool
        self.old_defs = old_root.get("$defs") or old_root.get("definitions") or {}
        self.new_defs = new_root.get("$defs") or new_root.get("definitions") or {}
        self.out: list[Drift] = []
        self._seen: set[tuple[str, str, str]] = set()

    def _deref(self, s: Any, defs: dict[str, Any]) -> Any:
        for _ in range(32):
            if not (isinstance(s, dict) and isinstance(s.get("$ref"), str)):
                break
            target = defs.get(s["$ref"].rsplit("/", 1)[-1])
            if target is None:
                break
            extra = {k: v for k, v in s.items() if k != "$ref"}
            s = {**target, **extra}
        return s

    def _type(self, s: Any, defs: dict[str, Any]) -> str:
        s = self._deref(s, defs)
        if not isinstance(s, dict):
            return "any"
        t = s.get("type")
        if isinstance(t, list):
            return "|".join(sorted(str(x) for x in t))
        if isinstance(t, str):
            return t
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list):
                return "|".join(sorted({self._type(x, defs) for x in s[key]}))
        if "enum" in s:
            return "enum"
        if "properties" in s:
            return "object"
        return "any"

    def add(self, kind: str, path: str | None, detail: str) -> None:
        self.out.append(Drift(kind, self.tool, detail, path))

    def compare(self, path: str, old: Any, new: Any) -> None:
        key = (path, repr(old)[:200], repr(new)[:200])
        if key in self._seen or path.count(".") > 20:
            return
        self._seen.add(key)
        old = self._deref(old, self.old_defs)
        new = self._deref(new, self.new_defs)
        # no shortcut on old == new: equal text can hide changed $defs behind the same $ref
        if not isinstance(old, dict) or not isinstance(new, dict):
            return
        told, tnew = self._type(old, self.old_defs), self._type(new, self.new_defs)
        if told != tnew:
            self.add("type_changed", path, f"type {told} -> {tnew}")
            return
        if old.get("enum") != new.get("enum"):
            a, b = old.get("enum") or [], new.get("enum") or []
            removed = [x for x in a if x not in b]
            added = [x for x in b if x not in a]
            self.add("parameter_changed", path,
                     f"allowed values changed (removed {removed}, added {added})")
        if old.get("default") != new.get("default"):
            self.add("parameter_changed", path,
                     f"default {old.get('default')!r} -> {new.get('default')!r}")
        if old.get("description") != new.get("description") and path:
            self.add("parameter_changed", path, "description changed")
        for c in _CONSTRAINTS:
            if c == "additionalProperties" and isinstance(old.get(c), dict):
                continue
            if old.get(c) != new.get(c):
                self.add("parameter_changed", path, f"{c} {old.get(c)!r} -> {new.get(c)!r}")
        self._compare_objects(path, old, new)
        if "items" in old or "items" in new:
            self.compare(f"{path}[]" if path else "[]", old.get("items"), new.get("items"))
        for k in ("anyOf", "oneOf"):
            a = [x for x in old.get(k) or [] if self._type(x, self.old_defs) != "null"]
            b = [x for x in new.get(k) or [] if self._type(x, self.new_defs) != "null"]
            if len(a) == 1 and len(b) == 1:
                self.compare(path, a[0], b[0])

    def _compare_objects(self, path: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        po, pn = old.get("properties") or {}, new.get("properties") or {}
        ro, rn = set(old.get("required") or []), set(new.get("required") or [])
        prefix = f"{path}." if path else ""
        for name in po:
            if name not in pn:
                self.add("parameter_removed", prefix + name,
                         f"parameter removed (was {self._type(po[name], self.old_defs)})")
        for name in pn:
            if name not in po:
                req = "required" if name in rn else "optional"
                self.add("parameter_added", prefix + name,
                         f"{req} parameter added ({self._type(pn[name], self.new_defs)})")
        for name in po:
            if name in pn:
                if (name in ro) != (name in rn):
                    was, now = ("required", "optional") if name in ro else ("optional", "required")
                    self.add("parameter_changed", prefix + name, f"{was} -> {now}")
                self.compare(prefix + name, po[name], pn[name])


def diff_entry(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[Drift]:
    differ = _Differ(name, old.get("parameters") or {}, new.get("parameters") or {})
    for key in ("version", "side_effect", "idempotent", "requires_approval", "critical"):
        if old.get(key) != new.get(key):
            differ.add("tool_changed", None, f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    if old.get("description") != new.get("description"):
        differ.add("tool_changed", None, "description changed")
    differ.compare("", old.get("parameters") or {}, new.get("parameters") or {})
    if not differ.out and old.get("hash") != new.get("hash"):
        differ.add("tool_changed", None, f"schema hash {old.get('hash')} -> {new.get('hash')}")
    return differ.out


def diff_lock(
    locked: dict[str, dict[str, Any]], live: dict[str, dict[str, Any]]
) -> list[Drift]:
    """Every drift between lock entries and live entries (empty list: no drift)."""
    drifts: list[Drift] = []
    for name in sorted(set(locked) | set(live)):
        if name not in live:
            drifts.append(Drift("tool_removed", name,
                                f"tool removed (locked version {locked[name].get('version')})"))
        elif name not in locked:
            drifts.append(Drift("tool_added", name,
                                f"tool added (version {live[name].get('version')})"))
        elif locked[name].get("hash") != live[name].get("hash"):
            drifts.extend(diff_entry(name, locked[name], live[name]))
    return drifts
