"""``tools.lock.json``: pin every tool's contract and report drift of live sources against it.

The lock records its own sources (modules, OpenAPI specs as files or URLs, MCP server configs),
so ``tether tools check`` run in CI
needs no flags: it reloads the same sources and compares. Each entry keeps the full parameter
schema, not only its hash, so a drift is reported field by field (what changed, from what to what)
instead of "hash differs".
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tether.tools._base import Tool
from tether.tools._drift import LOCK_FORMAT, Drift, diff_lock, lock_entry, read_lock
from tether.tools._errors import LockError, OpenAPIError, ToolDefinitionError
from tether.tools._openapi import load_spec, openapi_tools
from tether.tools._registry import ToolRegistry

DEFAULT_LOCK = "tools.lock.json"
_PLACEHOLDER_BASE = "http://base-url-not-configured.invalid"


@dataclass(frozen=True)
class OpenAPISource:
    spec: str
    base_url: str | None = None

    @property
    def is_url(self) -> bool:
        """The spec is fetched from a live service (``http(s)://...``), not read from a file."""
        return self.spec.startswith(("http://", "https://"))

    @classmethod
    def parse(cls, text: str) -> OpenAPISource:
        """``spec.yaml``, ``spec.yaml=http://host:port`` (split at the first ``=``) or a URL
        ``http://host/openapi.json[=BASE_URL]`` (split at the first ``=`` after the URL's path
        starts, so a query string's ``=`` stays in it only when a base URL follows)."""
        if text.startswith(("http://", "https://")):
            spec, sep, base = text.partition("=http")
            base = "http" + base if sep else ""
            return cls(spec.strip(), base.strip() or None)
        spec, sep, base = text.partition("=")
        if not spec.strip():
            raise LockError(f"--openapi {text!r}: expected SPEC or SPEC=BASE_URL")
        return cls(spec.strip(), base.strip() or None if sep else None)


@dataclass
class ToolSources:
    """Where live tools come from: Python modules, OpenAPI specs (files or URLs) and MCP server
    config files (YAML, see `tether.tools.mcp`)."""

    modules: list[str] = field(default_factory=list)
    openapi: list[OpenAPISource] = field(default_factory=list)
    mcp: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.modules or self.openapi or self.mcp)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "modules": list(self.modules),
            "openapi": [
                {"spec": s.spec, **({"base_url": s.base_url} if s.base_url else {})}
                for s in self.openapi
            ],
        }
        if self.mcp:
            out["mcp"] = list(self.mcp)
        return out

    @classmethod
    def from_json(cls, data: Any) -> ToolSources:
        if not isinstance(data, dict):
            return cls()
        return cls(
            modules=[str(m) for m in data.get("modules", [])],
            openapi=[
                OpenAPISource(str(o["spec"]), o.get("base_url"))
                for o in data.get("openapi", [])
                if isinstance(o, dict) and "spec" in o
            ],
            mcp=[str(m) for m in data.get("mcp", [])],
        )


def _import_module(ref: str, base_dir: Path) -> Any:
    """Import a tool module by file path or dotted name. Whatever its own code raises while
    importing (a missing dependency, a syntax error, any exception) becomes a
    ToolDefinitionError naming the module and the line: callers (the CLI, `tether serve`)
    report it as one line instead of the module's traceback."""
    if ref.endswith(".py"):
        path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
        if not path.exists():
            raise ToolDefinitionError(f"tool module file {str(path)!r} does not exist")
        name = f"_tether_tools_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ToolDefinitionError(f"cannot import tool module file {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)  # a half-run module must not be found by a retry
            raise _import_failed(f"tool module file {ref!r}", e) from e
        return module
    for entry in (str(base_dir), str(Path.cwd())):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as e:
        if e.name != ref and not ref.startswith(f"{e.name}."):
            raise _import_failed(f"tool module {ref!r}", e) from e  # a module it imports
        raise ToolDefinitionError(
            f"cannot import tool module {ref!r}: {e}; check the name, or give a file path "
            "(path/to/tools.py)") from e
    except Exception as e:
        raise _import_failed(f"tool module {ref!r}", e) from e


def _import_failed(what: str, exc: Exception) -> ToolDefinitionError:
    """One line for a module whose code failed while importing: what, where (the line of the
    tool module that led to it, then where it was raised if elsewhere), what to do."""
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename or '?').name}, line {exc.lineno}"
        return ToolDefinitionError(
            f"cannot import {what}: syntax error ({exc.msg}) in {where}; fix the file")
    frames = [f"{Path(f.filename).name}, line {f.lineno}"
              for f in traceback.extract_tb(exc.__traceback__)
              if f.filename != __file__ and not f.filename.startswith("<")  # not the machinery
              and Path(f.filename).parent.name != "importlib"]
    where = (f" ({frames[0]}" + (f", raised in {frames[-1]}" if len(frames) > 1 else "") + ")"
             if frames else "")
    text = " ".join(str(exc).split())  # one line, whatever the module's message
    if isinstance(exc, ModuleNotFoundError):
        return ToolDefinitionError(
            f"cannot import {what}: {text}{where}; install the package that provides "
            f"{exc.name!r} in this Python environment, or fix the import")
    raised = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ToolDefinitionError(
        f"cannot import {what}: it raised {raised}{where}; fix the module so that importing "
        "it runs cleanly")


def tools_from_module(ref: str, base_dir: Path | None = None) -> list[Tool]:
    """Tools defined in a module: ``pkg.mod`` (every Tool and ToolRegistry in it),
    ``pkg.mod:attr`` (one Tool or ToolRegistry), or a ``path/to/file.py``."""
    base = base_dir or Path.cwd()
    mod_ref, _, attr = ref.partition(":") if not ref.endswith(".py") else (ref, "", "")
    module = _import_module(mod_ref, base)
    if attr:
        if not hasattr(module, attr):
            raise ToolDefinitionError(f"module {mod_ref!r} has no attribute {attr!r}")
        values = [getattr(module, attr)]
        if not isinstance(values[0], Tool | ToolRegistry):
            raise ToolDefinitionError(f"{ref!r} is neither a Tool nor a ToolRegistry")
    else:
        values = list(vars(module).values())
    found: list[Tool] = []
    seen: set[int] = set()
    for value in values:
        items = value.list(all_versions=True) if isinstance(value, ToolRegistry) else [value]
        for t in items:
            if isinstance(t, Tool) and id(t) not in seen:
                seen.add(id(t))
                found.append(t)
    if not found:
        raise ToolDefinitionError(f"module {ref!r} defines no tools (no @tool functions found)")
    return found


def load_sources(sources: ToolSources, base_dir: Path | None = None) -> ToolRegistry:
    """Build a registry from live sources (relative paths are relative to ``base_dir``)."""
    base = base_dir or Path.cwd()
    registry = ToolRegistry()
    for ref in sources.modules:
        for t in tools_from_module(ref, base):
            registry.register(t)
    for src in sources.openapi:
        spec: Path | dict[str, Any] = (
            _fetch_spec(src.spec) if src.is_url
            else Path(src.spec) if Path(src.spec).is_absolute() else base / src.spec
        )
        base_url = src.base_url
        if base_url is None:
            doc, _ = load_spec(spec)
            servers = [s.get("url", "") for s in doc.get("servers") or [] if isinstance(s, dict)]
            if not any(u.startswith(("http://", "https://")) for u in servers):
                # a fetched spec's server is where it came from; a file's is unknown: schemas
                # only, and calls would fail clearly
                base_url = _origin(src.spec) if src.is_url else _PLACEHOLDER_BASE
        for t in openapi_tools(spec, base_url):
            registry.register(t)
    if sources.mcp:
        from tether.tools.mcp._snapshot import mcp_tools_now

        paths = [Path(m) if Path(m).is_absolute() else base / m for m in sources.mcp]
        for t in mcp_tools_now(paths):
            registry.register(t)
    return registry


def _fetch_spec(url: str) -> dict[str, Any]:
    """An OpenAPI document served by a live service (JSON or YAML), read within a bound."""
    from tether.tools._openapi_fetch import fetch_spec

    doc = fetch_spec(url)
    if not isinstance(doc, dict):
        raise OpenAPIError(f"OpenAPI spec at {url!r} must be a mapping at the top level")
    return doc


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def lock_entries(registry: ToolRegistry) -> dict[str, dict[str, Any]]:
    """Entries keyed by tool name (``name@version`` when several versions coexist)."""
    out: dict[str, dict[str, Any]] = {}
    for name in registry.names():
        versions = registry.versions(name)
        for v in versions:
            key = name if len(versions) == 1 else f"{name}@{v}"
            out[key] = lock_entry(registry.get(name, v))
    return out


def write_lock(
    registry: ToolRegistry, path: str | Path, sources: ToolSources | None = None
) -> dict[str, Any]:
    data = {
        "format": LOCK_FORMAT,
        "sources": (sources or ToolSources()).to_json(),
        "tools": lock_entries(registry),
    }
    Path(path).write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return data


def check_lock(registry: ToolRegistry, path: str | Path) -> list[Drift]:
    return diff_lock(read_lock(path)["tools"], lock_entries(registry))
