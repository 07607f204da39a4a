"""The tool registry: a named, versioned set of tools."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tether.tools._base import Tool
from tether.tools._decorator import FunctionTool
from tether.tools._errors import ToolConflictError, ToolNotFoundError


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally: ``1.9`` < ``1.10-beta`` < ``1.10`` < ``1.10.1``."""
    parts = re.split(r"[.\-+_]", version)
    key = [(0, int(p)) if p.isdigit() else (-2, p) for p in parts]
    return (*key, (-1, ""))  # the end sorts after text: 1.10-beta < 1.10 < 1.10.1


class ToolRegistry:
    """Tools by name, each possibly in several versions (an agent spec pins versions).

    ``get(name)`` returns the newest version; ``get(name, version)`` an exact one.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, dict[str, Tool]] = {}
        for t in tools:
            self.register(t)

    def register(self, t: Tool | Callable[..., Any], *, replace: bool = False) -> Tool:
        """Add a tool (a plain function is wrapped with default ``@tool`` metadata).

        Registering the same name and version twice is an error unless ``replace=True``:
        two different tools answering to one pinned version would make runs unreproducible.
        """
        if not isinstance(t, Tool):
            t = FunctionTool(t)
        versions = self._tools.setdefault(t.name, {})
        existing = versions.get(t.version)
        if existing is not None and existing is not t and not replace:
            raise ToolConflictError(
                f"tool {t.name!r} version {t.version!r} is already registered "
                f"(from {existing.source}); bump the version or pass replace=True"
            )
        versions[t.version] = t
        return t

    def tool(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Decorator form: ``@registry.tool`` or ``@registry.tool(side_effect="write")``."""
        from tether.tools._decorator import tool as make_tool

        def wrap(f: Callable[..., Any]) -> Tool:
            return self.register(make_tool(**options)(f))

        return wrap(fn) if fn is not None else wrap

    def add_openapi(
        self,
        spec: str | Path | dict[str, Any],
        base_url: str | None = None,
        **options: Any,
    ) -> builtins.list[Tool]:
        """Register every operation of an OpenAPI 3 document (see :func:`openapi_tools`)."""
        from tether.tools._openapi import openapi_tools

        tools = openapi_tools(spec, base_url, **options)
        for t in tools:
            self.register(t)
        return list(tools)

    def unregister(self, name: str, version: str | None = None) -> None:
        if name not in self._tools or (version and version not in self._tools[name]):
            raise ToolNotFoundError(name, self.names(), version)
        if version is None:
            del self._tools[name]
        else:
            del self._tools[name][version]
            if not self._tools[name]:
                del self._tools[name]

    def get(self, name: str, version: str | None = None) -> Tool:
        versions = self._tools.get(name)
        if not versions:
            raise ToolNotFoundError(name, self.names())
        if version is None:
            if len(versions) == 1:  # the common case, asked on every call: no version sort
                return next(iter(versions.values()))
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise ToolNotFoundError(name, [f"{name}@{v}" for v in sorted(versions)], version)
        return versions[version]

    def versions(self, name: str) -> builtins.list[str]:
        return sorted(self._tools.get(name, {}), key=version_key)

    def names(self) -> builtins.list[str]:
        return sorted(self._tools)

    def list(self, *, all_versions: bool = False) -> builtins.list[Tool]:
        """Tools sorted by name: the newest version of each, or every version."""
        if all_versions:
            return [self._tools[n][v] for n in self.names() for v in self.versions(n)]
        return [self.get(n) for n in self.names()]

    def definitions(self, names: Iterable[str] | None = None) -> builtins.list[dict[str, Any]]:
        """Model-facing tool definitions (``{name, description, parameters}``)."""
        chosen = self.list() if names is None else [self.get(n) for n in names]
        return [t.definition() for t in chosen]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with only the named tools (their newest versions), e.g. per agent."""
        return ToolRegistry(self.get(n) for n in names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"<ToolRegistry {', '.join(self.names()) or 'empty'}>"

