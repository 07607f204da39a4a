"""Agent references: how a run names the code it executes, across processes and machines.

A reference is `package.module:function` (importable) or `path/to/file.py:function`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import typing
from collections.abc import Callable
from typing import Any

from .errors import AgentNotFound, InvalidInput

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


def portable_ref(agent: Callable[..., Any] | str) -> str:
    """The reference a queued run records: a file reference made absolute, so a worker started
    in any directory (or on any host sharing the path) loads the same file."""
    ref = agent_ref(agent)
    target, sep, name = ref.rpartition(":")
    if sep and target.endswith(".py"):
        return f"{os.path.abspath(target)}:{name}"
    return ref


def resolve_agent(ref: str) -> Callable[..., Any]:
    obj = _lookup(ref, "agent")
    if not callable(obj):
        raise AgentNotFound(f"{ref!r} is not callable")
    return obj


def check_agent(agent: Any, ref: str, *, input_given: bool) -> None:
    """Refuse, before anything is queued, what no worker could execute: a reference to a class
    or a plain function, an agent that does not take `(ctx, input)`, or a missing input that the
    agent cannot do without. A queued mistake would otherwise surface only in a worker, later."""
    if inspect.isclass(agent):
        raise AgentNotFound(
            f"{ref!r} names the class {agent.__name__}, not an agent: reference a module-level "
            "`async def NAME(ctx, input)` function instead")
    if not _is_coroutine_function(agent):
        raise AgentNotFound(
            f"{ref!r} is not an agent: it is not an `async def` function (an agent is "
            "`async def NAME(ctx, input)`); make it async or reference the agent itself")
    try:
        signature = inspect.signature(agent)
    except (TypeError, ValueError):  # a builtin without a signature: let the worker find out
        return
    try:
        signature.bind(None, None)
    except TypeError as exc:
        shown = f"{getattr(agent, '__name__', ref)}{signature}"
        raise AgentNotFound(
            f"{ref!r} cannot be called as an agent: it is `{shown}`, but a worker calls it "
            f"with two arguments, (ctx, input) ({exc}); give it exactly those parameters"
        ) from None
    if input_given:
        return
    params = [p for p in signature.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if len(params) < 2 or params[1].kind is params[1].VAR_POSITIONAL:
        return
    needed = params[1]
    if needed.default is not needed.empty or _accepts_none(agent, needed):
        return
    raise InvalidInput(
        f"agent {ref!r} needs an input: its parameter {needed.name!r} has no default. Pass one "
        "(`--input JSON` on the command line, `submit(agent, input)` in Python), or give the "
        "parameter a default")


def _is_coroutine_function(obj: Any) -> bool:
    target = obj
    while hasattr(target, "func"):  # functools.partial
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    dunder_call = inspect.getattr_static(type(target), "__call__", None)
    return not inspect.isfunction(target) and inspect.iscoroutinefunction(dunder_call)


def _accepts_none(agent: Any, param: inspect.Parameter) -> bool:
    """An input parameter written `_`, or typed to accept None/anything, does not need one."""
    if param.name.startswith("_"):
        return True
    if param.annotation is param.empty:
        return False
    try:
        hint = typing.get_type_hints(agent).get(param.name, param.annotation)
    except Exception:  # an annotation that cannot be evaluated: do not guess
        return True
    if hint in (Any, object, None, type(None)):
        return True
    return type(None) in typing.get_args(hint)


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
    except SyntaxError as exc:  # where, as an editor reads it, not the exception's tuple
        where = f"{exc.filename}:{exc.lineno}:{exc.offset}" if exc.filename else target
        raise AgentNotFound(f"importing {target!r} for {what} {ref!r} failed: {where}: "
                            f"syntax error: {exc.msg}") from exc
    except Exception as exc:  # an import error inside the user's module
        hint = ""
        if "running event loop" in str(exc):  # its top level ran an event loop: a script
            hint = ("; importing a file runs its top-level code: keep what runs the script "
                    "(submitting, asyncio.run) under `if __name__ == \"__main__\":`")
        raise AgentNotFound(
            f"importing {target!r} for {what} {ref!r} failed: {exc!r}{hint}") from exc
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            hint = ""
            if getattr(module, "__name__", None) == "__main__":  # the script still running
                hint = (": it is not defined yet when the script's top level runs it; keep "
                        "what runs the script under `if __name__ == \"__main__\":` at its end")
            raise AgentNotFound(
                f"{target!r} has no attribute {qualname!r} ({what} {ref!r}){hint}")
    return obj


def _import(name: str) -> Any:
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing",
                                          False):
        # imported already (a served agent, resolved for every run it executes): what
        # `import_module` would return, without a getcwd and the import machinery each time
        return module
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
        raise AgentNotFound(f"agent file {path!r} does not exist (looked for {full}, from "
                            f"{os.getcwd()})")
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main_file and os.path.abspath(main_file) == full:
        return main  # the script running now: importing it again would run it again
    name = "tether_agent_" + hashlib.sha1(full.encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise AgentNotFound(f"cannot load agent file {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _FILE_MODULES[name] = full
    folder = os.path.dirname(full)
    added = folder not in sys.path
    if added:  # the file imports modules next to it, as `python file.py` would let it
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a half-executed module must not be handed out next time
        _FILE_MODULES.pop(name, None)
        raise
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
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
