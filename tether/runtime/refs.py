"""Agent references: how a run names the code it executes, across processes and machines.

A reference is `package.module:function` (importable) or `path/to/file.py:function`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import AgentNotFound

_FILE_MODULES: dict[str, str] = {}  # synthetic module name -> absolute file path


def agent_ref(agent: Callable[..., Any] | str) -> str:
    if isinstance(agent, str):
        return agent
    module = getattr(agent, "__module__", None)
    qualname = getattr(agent, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname:
        raise AgentNotFound(
            f"{agent!r} cannot be referenced by other processes: define agents at module level"
        )
    if module in _FILE_MODULES:
        return f"{_FILE_MODULES[module]}:{qualname}"
    if module == "__main__":
        main = sys.modules["__main__"]
        path = getattr(main, "__file__", None)
        if path:
            return f"{os.path.abspath(path)}:{qualname}"
        raise AgentNotFound(
            f"agent {qualname} lives in __main__ without a file; move it to a module"
        )
    return f"{module}:{qualname}"


def resolve_agent(ref: str) -> Callable[..., Any]:
    obj = _lookup(ref, "agent")
    if not callable(obj):
        raise AgentNotFound(f"{ref!r} is not callable")
    return obj


def _lookup(ref: str, what: str) -> Any:
    """The object a `module:NAME` or `file.py:NAME` reference names (agents and guards alike)."""
    target, sep, qualname = ref.rpartition(":")
    if not sep or not target or not qualname:
        raise AgentNotFound(
            f"{what} reference {ref!r} must look like 'package.module:NAME' or 'file.py:NAME'"
        )
    try:
        module = _load_file(target) if target.endswith(".py") else _import(target)
    except AgentNotFound:
        raise
    except Exception as exc:  # an import error inside the user's module
        raise AgentNotFound(f"importing {target!r} for {what} {ref!r} failed: {exc!r}") from exc
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise AgentNotFound(f"{target!r} has no attribute {qualname!r} ({what} {ref!r})")
    return obj


def _import(name: str) -> Any:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise AgentNotFound(
                f"module {name!r} not found (run from the directory that contains it, or set "
                "PYTHONPATH)"
            ) from exc
        raise


def _load_file(path: str) -> Any:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise AgentNotFound(f"agent file {path!r} does not exist")
    name = "tether_agent_" + hashlib.sha1(full.encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise AgentNotFound(f"cannot load agent file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _FILE_MODULES[name] = full
    spec.loader.exec_module(module)
    return module


def guards_ref(guards: object) -> str | None:
    """The reference recorded with a run for its guards: a `module:NAME` string as given.

    Only a reference travels: any worker on any host resolves it the same way, which is what makes
    the guards part of the run rather than of the process that happens to execute it. An object
    applies in-process only (returns None)."""
    if not isinstance(guards, str):
        return None
    target, sep, name = guards.rpartition(":")
    if not sep or not target or not name:
        raise AgentNotFound(
            f"guards reference {guards!r} must look like 'package.module:NAME' or "
            "'file.py:NAME' (a module-level Guards object)")
    if target.endswith(".py"):  # stored absolute, so a worker started elsewhere finds it
        return f"{os.path.abspath(target)}:{name}"
    return guards


def resolve_guards(ref: str) -> Any:
    """Import the guards a run declares; anything with an `interceptors()` method qualifies."""
    obj = _lookup(ref, "guards")
    if not callable(getattr(obj, "interceptors", None)):
        raise AgentNotFound(
            f"guards reference {ref!r} names {type(obj).__name__}, not guards (an object with an "
            "interceptors() method, such as tether.guards.Guards)")
    return obj
