"""``@tool``: a typed Python function becomes a :class:`FunctionTool`."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ValidationError

from tether.tools._base import Tool, coerce_arguments
from tether.tools._errors import ToolArgumentError, ToolDefinitionError
from tether.tools._schema import (
    IDEMPOTENCY_PARAM,
    build_args_model,
    copy_json,
    direct_call_fields,
    field_errors,
    model_schema,
    parse_docstring,
)
from tether.tools._threads import in_thread
from tether.tools._validated import validated_by

#: the parameter through which a network tool receives its HTTP client (not in the schema)
HTTP_PARAM = "http"


def _http_client_kind(fn: Callable[..., Any], tool_name: str, network: bool) -> str | None:
    """`"async"`/`"sync"` when `fn` takes the HTTP client (`http: httpx.AsyncClient` or
    `http: httpx.Client`), else None.

    The client is what makes a network tool's requests follow the egress policy, redirects
    included (`tether.tools.network`); it is typed so that a sync tool gets a sync client."""
    param = inspect.signature(fn).parameters.get(HTTP_PARAM)
    if param is None:
        return None
    import httpx

    annotation = param.annotation
    if isinstance(annotation, str):  # `from __future__ import annotations` in the tool's module
        try:
            annotation = typing.get_type_hints(fn).get(HTTP_PARAM)
        except Exception:  # another hint does not resolve here; build_args_model reports it
            annotation = {"httpx.AsyncClient": httpx.AsyncClient,
                          "httpx.Client": httpx.Client}.get(annotation)
    if annotation not in (httpx.AsyncClient, httpx.Client):
        return None  # an ordinary argument that happens to be called `http`
    if not network:
        raise ToolDefinitionError(
            f"tool {tool_name!r} takes an HTTP client ({HTTP_PARAM!r}) but is not declared "
            "network=True; declare it, so the guards check the destinations it reaches")
    is_async = inspect.iscoroutinefunction(fn)
    if (annotation is httpx.AsyncClient) != is_async:
        want = "httpx.AsyncClient" if is_async else "httpx.Client"
        raise ToolDefinitionError(
            f"tool {tool_name!r}: {'an async' if is_async else 'a sync'} tool takes {want} as "
            f"{HTTP_PARAM!r}")
    return "async" if is_async else "sync"


def _without_param(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A stand-in for `fn` whose signature lacks `name`, for building the argument model."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def stand_in(*args: Any, **kwargs: Any) -> Any:  # never called
        raise NotImplementedError

    stand_in.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != name])
    return stand_in


class FunctionTool(Tool):
    """A tool backed by a Python function (sync or async).

    The object stays callable like the original function, so decorating a function does not
    change how plain Python code calls it.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        version: str = "1",
        description: str | None = None,
        side_effect: str = "read",
        idempotent: bool | None = None,
        timeout: float | None = 30.0,
        retries: int = 0,
        requires_approval: bool = False,
        critical: bool = False,
        network: bool = False,
        resources: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@tool expects a function, got {fn!r}")
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        doc_description, param_docs = parse_docstring(inspect.getdoc(fn))
        self._http = _http_client_kind(fn, tool_name, network)
        schema_fn = _without_param(fn, HTTP_PARAM) if self._http else fn
        args_model, accepts_key = build_args_model(schema_fn, tool_name, param_docs)
        super().__init__(
            name=tool_name,
            version=version,
            description=(description if description is not None else doc_description),
            side_effect=side_effect,
            # reads are idempotent unless said otherwise; writes must opt in
            idempotent=(side_effect == "read") if idempotent is None else idempotent,
            timeout=timeout,
            retries=retries,
            parameters=model_schema(args_model),
            accepts_idempotency_key=accepts_key,
            source=f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', tool_name)}",
            requires_approval=requires_approval,
            critical=critical,
            resources=resources,
        )
        self.network = bool(network)
        self.fn = fn
        self.args_model: type[BaseModel] = args_model
        #: plain-JSON arguments (their containers to copy): a call takes its validated
        #: arguments without a second parse; None: the model parses them for each call
        self._direct = direct_call_fields(args_model)
        self._is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle a module-level tool by reference, as pickle does functions.

        A heavy tool's call is shipped to a Ray worker, which imports the tool's module and
        gets the very tool declared there. (Decorating replaces the function in its module, so
        the function itself no longer pickles by reference.) Other tools pickle by value."""
        module = str(getattr(self.fn, "__module__", "") or "")
        qualname = str(getattr(self.fn, "__qualname__", "") or "")
        if "<locals>" not in qualname and _lookup(sys.modules.get(module), qualname) is self:
            return _import_tool, (module, qualname)
        return super().__reduce_ex__(protocol)

    def parse(self, arguments: Any) -> BaseModel:
        """Validate into the pydantic argument model (nested models stay models)."""
        data = coerce_arguments(self.name, arguments)
        try:
            # `model_validate` without its Python wrapper (the same validator and errors)
            model: BaseModel = self.args_model.__pydantic_validator__.validate_python(data)
        except ValidationError as e:
            raise ToolArgumentError(self.name, field_errors(e)) from None
        return model

    def validate(self, arguments: Any) -> dict[str, Any]:
        if validated_by(arguments, self):  # already this tool's normal form: a changeable copy
            return dict(arguments)
        # `model_dump(mode="json", by_alias=True)` without its Python wrapper (the same
        # serializer): by alias, the names the schema gives (what the model proposes and the
        # policy judges); by field name, an aliased argument failed its own second validation
        normal: dict[str, Any] = self.args_model.__pydantic_serializer__.to_python(
            self.parse(arguments), mode="json", by_alias=True)
        return normal

    @property
    def stable_validation(self) -> bool:
        """Whether validating this tool's own normalised arguments again gives them back
        unchanged, known from its schema: every argument plain JSON, no validator function
        (`direct_call_fields`, which the call itself relies on), and validation not overridden.
        The guards' stability check (`PolicyGate.prepare`) could not fail, so it is skipped."""
        cls = type(self)
        return (self._direct is not None and cls.validate is FunctionTool.validate
                and cls.parse is FunctionTool.parse)

    def _kwargs(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The function's keyword arguments: its own validated arguments as they are when
        they are plain JSON (lists and objects copied), else from the model, parsed again."""
        if self._direct is not None and validated_by(arguments, self):
            kwargs = dict(arguments)
            for name in self._direct:
                kwargs[name] = copy_json(kwargs[name])
            return kwargs
        model = self.parse(arguments)
        return {field: getattr(model, field) for field in type(model).model_fields}

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        kwargs = self._kwargs(arguments)
        if self.accepts_idempotency_key:
            kwargs[IDEMPOTENCY_PARAM] = idempotency_key
        if self._http == "async":
            from tether.tools.network import async_client

            async with async_client(timeout=self.timeout) as http:
                return await self.fn(**kwargs, **{HTTP_PARAM: http})
        if self._http == "sync":
            return await in_thread(self._call_with_sync_client, kwargs)
        if self._is_async:
            return await self.fn(**kwargs)
        return await in_thread(self.fn, **kwargs)

    def _call_with_sync_client(self, kwargs: dict[str, Any]) -> Any:
        """In the tool's thread, which carries the caller's context (its egress check)."""
        from tether.tools.network import sync_client

        with sync_client(timeout=self.timeout) as http:
            return self.fn(**kwargs, **{HTTP_PARAM: http})


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _import_tool(module: str, qualname: str) -> FunctionTool:
    tool = _lookup(importlib.import_module(module), qualname)
    if not isinstance(tool, FunctionTool):
        raise TypeError(f"{module}:{qualname} is no longer a tool; it cannot be unpickled")
    return tool


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
    side_effect: str = "read",
    idempotent: bool | None = None,
    timeout: float | None = 30.0,
    retries: int = 0,
    requires_approval: bool = False,
    critical: bool = False,
    network: bool = False,
    resources: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    description: str | None = None,
    side_effect: str = "read",
    idempotent: bool | None = None,
    timeout: float | None = 30.0,
    retries: int = 0,
    requires_approval: bool = False,
    critical: bool = False,
    network: bool = False,
    resources: dict[str, Any] | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a typed function into a tool; usable bare (``@tool``) or with options.

    Defaults: ``side_effect="read"``, ``idempotent`` = (side_effect == "read"), 30 s timeout,
    no retries, no approval. ``requires_approval`` / ``critical`` (two signed approvals) are
    enforced by the guards' policy gateway. The description is the docstring (its ``Args:``
    section documents parameters).
    A parameter named ``idempotency_key`` is left out of the schema and receives the runtime's
    ``run_id:seq`` key, which also lets the runtime safely re-run the call if it is in doubt.
    ``network=True`` declares that the tool reaches the network: the guards check the URLs in
    its arguments against the egress policy, and a parameter named ``http`` (typed
    ``httpx.AsyncClient``, or ``httpx.Client`` for a sync tool) receives a client that checks
    every request it sends, redirect hops included (``tether.tools.network``).
    ``resources`` (keys ``num_cpus``, ``num_gpus``, ``memory`` in bytes, ``custom``) marks a heavy
    tool: on a worker with a Ray executor each call runs as a Ray task with them reserved;
    elsewhere it runs in the worker as usual.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            f,
            name=name,
            version=version,
            description=description,
            side_effect=side_effect,
            idempotent=idempotent,
            timeout=timeout,
            retries=retries,
            requires_approval=requires_approval,
            critical=critical,
            network=network,
            resources=resources,
        )

    if fn is not None:
        return wrap(fn)
    return wrap
