"""``@tool``: a typed Python function becomes a :class:`FunctionTool`."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ValidationError

from tether.tools._base import Tool
from tether.tools._errors import ToolArgumentError
from tether.tools._schema import (
    IDEMPOTENCY_PARAM,
    build_args_model,
    field_errors,
    model_schema,
    parse_docstring,
)


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
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@tool expects a function, got {fn!r}")
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        doc_description, param_docs = parse_docstring(inspect.getdoc(fn))
        args_model, accepts_key = build_args_model(fn, tool_name, param_docs)
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
        )
        self.fn = fn
        self.args_model: type[BaseModel] = args_model
        self._is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def parse(self, arguments: Any) -> BaseModel:
        """Validate into the pydantic argument model (nested models stay models)."""
        from tether.tools._base import coerce_arguments

        data = coerce_arguments(self.name, arguments)
        try:
            return self.args_model.model_validate(data)
        except ValidationError as e:
            raise ToolArgumentError(self.name, field_errors(e)) from None

    def validate(self, arguments: Any) -> dict[str, Any]:
        return self.parse(arguments).model_dump(mode="json")

    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        model = self.parse(arguments)
        kwargs = {field: getattr(model, field) for field in type(model).model_fields}
        if self.accepts_idempotency_key:
            kwargs[IDEMPOTENCY_PARAM] = idempotency_key
        if self._is_async:
            return await self.fn(**kwargs)
        return await asyncio.to_thread(self.fn, **kwargs)


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
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a typed function into a tool; usable bare (``@tool``) or with options.

    Defaults: ``side_effect="read"``, ``idempotent`` = (side_effect == "read"), 30 s timeout,
    no retries, no approval. ``requires_approval`` / ``critical`` (two signed approvals) are
    enforced by the guards' policy gateway. The description is the docstring (its ``Args:``
    section documents parameters).
    A parameter named ``idempotency_key`` is left out of the schema and receives the runtime's
    ``run_id:seq`` key, which also lets the runtime safely re-run the call if it is in doubt.
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
        )

    if fn is not None:
        return wrap(fn)
    return wrap
