"""`ValidatedArguments`: arguments one tool has validated, which it runs on without validating
them again.

A governed call used to be validated up to five times on its way to the tool (the gateway's
normalisation and stability check, the runtime's check, `Tool.invoke`, and the function tool's
own parse): each a full pydantic pass over the same dict. `Tool.validated` returns this read-only
dict instead; every later validating call of *the same tool* recognises it and hands it on, so
the policy judges, the approvers sign and the journal records exactly what the tool receives.

It is an ordinary `dict` for readers (JSON encoders, `==`, `isinstance(..., dict)`), but it
refuses changes, so nothing can slip an unvalidated value in after the check; a copy of it
(`dict(...)`, `copy`, pickle) is a plain dict, which is validated again where it is used.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeGuard


class ValidatedArguments(dict[str, Any]):
    """The normalised arguments (defaults filled in, JSON values) `tool` returned for a call."""

    __slots__ = ("tool",)

    def __init__(self, tool: object, normalised: dict[str, Any]) -> None:
        super().__init__(normalised)
        #: the tool (a `Tool`; not imported here: `_base` imports this module) whose validation
        #: produced these; only it skips validating them again
        self.tool = tool

    def _read_only(self, *_: Any, **__: Any) -> NoReturn:
        name = getattr(self.tool, "name", "?")
        raise TypeError(
            f"validated arguments of tool {name!r} are read-only (the tool runs on exactly "
            "what was validated and judged); change a copy, dict(arguments), and validate that")

    __setitem__ = __delitem__ = _read_only
    update = pop = popitem = clear = setdefault = _read_only
    __ior__ = _read_only

    def copy(self) -> dict[str, Any]:
        """A plain, changeable dict (it will be validated again where it is used)."""
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # unpickled or deep-copied elsewhere (a Ray worker) it is just data: validated again
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return copy.deepcopy(dict(self), memo)


def validated_by(arguments: Any, tool: object) -> TypeGuard[ValidatedArguments]:
    """Whether `arguments` are `tool`'s own validated arguments (so need no second pass)."""
    return type(arguments) is ValidatedArguments and arguments.tool is tool
