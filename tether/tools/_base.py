"""The tool abstraction shared by Python-function tools and OpenAPI tools."""

from __future__ import annotations

import asyncio
import json
import math
from abc import ABC, abstractmethod
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from tether.store import dumps, loads
from tether.tools._deadline import bounded
from tether.tools._errors import (
    FieldError,
    ToolArgumentError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolTimeoutError,
)
from tether.tools._schema import schema_hash
from tether.tools._validated import ValidatedArguments, validated_by

SideEffect = Literal["read", "write", "destructive"]
SIDE_EFFECTS: tuple[str, ...] = ("read", "write", "destructive")

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_metadata(
    name: str, version: str, side_effect: str, timeout: float | None, retries: int
) -> None:
    """Reject bad metadata at definition time, where the author can still fix it."""
    if not name or len(name) > 64 or not set(name) <= _NAME_OK:
        raise ToolDefinitionError(
            f"invalid tool name {name!r}: use 1-64 characters from a-z, A-Z, 0-9, '_' and '-' "
            "(the character set model providers accept for function names)"
        )
    if not isinstance(version, str) or not version.strip():
        raise ToolDefinitionError(f"tool {name!r}: version must be a non-empty string")
    if side_effect not in SIDE_EFFECTS:
        raise ToolDefinitionError(
            f"tool {name!r}: side_effect must be one of {', '.join(SIDE_EFFECTS)}, "
            f"not {side_effect!r}"
        )
    if timeout is not None and not timeout > 0:
        raise ToolDefinitionError(f"tool {name!r}: timeout must be > 0 seconds, not {timeout!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ToolDefinitionError(f"tool {name!r}: retries must be an integer >= 0")


#: what a tool may ask of the machine that runs it: the keywords of the runtime's ``Resources``
RESOURCE_KEYS: tuple[str, ...] = ("num_cpus", "num_gpus", "memory", "custom")


def _amount_ok(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def check_resources(name: str, resources: Any) -> dict[str, Any] | None:
    """Validate a tool's ``resources`` at definition time and return a private copy.

    The tool layer cannot import the runtime's ``Resources`` (layer 2), so a tool declares plain
    data with the same keys; checking it here means a typo fails where the tool is written, not
    on the first call inside a running agent.
    """
    if resources is None:
        return None
    if not isinstance(resources, dict) or not all(isinstance(k, str) for k in resources):
        raise ToolDefinitionError(
            f"tool {name!r}: resources must be a dict such as {{'num_cpus': 2, "
            f"'memory': 2 << 30}}, not {resources!r}")
    for key, value in resources.items():
        if key not in RESOURCE_KEYS:
            raise ToolDefinitionError(
                f"tool {name!r}: unknown resources key {key!r}; use "
                f"{', '.join(RESOURCE_KEYS)}")
        if key in ("num_cpus", "num_gpus") and not _amount_ok(value):
            raise ToolDefinitionError(
                f"tool {name!r}: resources[{key!r}] must be a number >= 0 (fractions allowed), "
                f"not {value!r}")
        if key == "memory" and (not isinstance(value, int) or isinstance(value, bool)
                                or value <= 0):
            raise ToolDefinitionError(
                f"tool {name!r}: resources['memory'] must be whole bytes > 0 (e.g. 2 << 30 for "
                f"2 GiB), not {value!r}")
        if key == "custom" and (
                not isinstance(value, dict)
                or not all(isinstance(k, str) and k and _amount_ok(v) for k, v in value.items())):
            raise ToolDefinitionError(
                f"tool {name!r}: resources['custom'] must map cluster resource names to numbers "
                f">= 0, not {value!r}")
    out = dict(resources)
    if "custom" in out:
        out["custom"] = dict(out["custom"])
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def coerce_arguments(tool: str, arguments: Any, *, repair: bool = True) -> dict[str, Any]:
    """Accept a dict, a JSON string, or ``None`` (no arguments); anything else is an error.

    Models sometimes return arguments as a JSON string (OpenAI does, always); a string that is not
    valid JSON is repaired with ``json_repair`` only if it then decodes to an object, unless
    ``repair=False`` (the guards judge text only when it has one reading). A JSON object naming
    a key twice is refused: parsers disagree on which value wins, so a reviewer and the tool could
    read two different calls out of one text.
    """
    if type(arguments) is dict:  # what nearly every call sends: no other check applies
        return dict(arguments)
    if arguments is None:
        return {}
    if isinstance(arguments, BaseModel):
        return arguments.model_dump(mode="json")
    if isinstance(arguments, str | bytes):
        text = arguments.decode() if isinstance(arguments, bytes) else arguments
        if not text.strip():
            return {}
        try:
            arguments = json.loads(text, object_pairs_hook=_unique_keys)
        except _DuplicateKey as dup:
            raise ToolArgumentError(tool, [FieldError(
                dup.key, "this key appears more than once in the JSON object; send each "
                "argument once")]) from None
        except ValueError as exc:
            if not repair:
                raise ToolArgumentError(
                    tool, [FieldError("", f"arguments are not valid JSON ({exc})", text)]
                ) from None
            try:
                import json_repair

                arguments = json_repair.loads(text)
            except Exception:  # repair is best effort; the error below explains the problem
                arguments = None
            if not isinstance(arguments, dict):
                raise ToolArgumentError(
                    tool, [FieldError("", "arguments are not valid JSON", text)]
                ) from None
    if not isinstance(arguments, dict):
        raise ToolArgumentError(
            tool,
            [FieldError("", "arguments must be a JSON object of parameter names to values",
                        arguments)],
        )
    return dict(arguments)


_INT_MIN, _INT_MAX = -(2**63), 2**64  # the integers orjson writes: [min, max)


def _json_already(value: Any) -> bool:
    """An exact JSON scalar the JSON round trip below gives back unchanged (most results of
    small tools): not a subclass, an integer orjson writes, a finite float, an ASCII string
    (other strings may hold lone surrogates, which JSON cannot)."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return bool(_INT_MIN <= value < _INT_MAX)
    if kind is str:
        return bool(value.isascii())
    return kind is float and math.isfinite(value)


def to_json_value(tool: str, value: Any, *, ran: bool = False) -> Any:
    """Make a tool's return value JSON (the journal stores JSON; live and replay must agree).
    `ran`: the tool has run, so the error says its effect took place."""
    if _json_already(value):
        return value
    try:
        plain = to_jsonable_python(value)
        return loads(dumps(plain))  # the journal's codec: what replay reads back
    except (PydanticSerializationError, TypeError, ValueError, orjson.JSONEncodeError) as e:
        why = str(e)
        if "serialization depth" in why:  # pydantic's own limit, before the journal's
            why = "it is nested too deeply (lists and objects within each other)"
        done = (" The tool ran and its effect took place; only its result is lost: do not "
                "call it again for the same purpose." if ran else "")
        raise ToolExecutionError(
            tool, f"tool {tool!r} returned a value that is not JSON-serialisable: {why}.{done}"
        ) from e


class Tool(ABC):
    """A callable capability a model can use, with the metadata the runtime needs.

    Subclasses implement :meth:`validate` and :meth:`_execute`; everything else (definitions for
    models, the schema hash used by ``tools.lock.json``, timeouts, retries) is shared.
    """

    name: str
    version: str
    description: str
    side_effect: SideEffect
    idempotent: bool
    timeout: float | None
    retries: int
    #: JSON Schema of the arguments object
    parameters: dict[str, Any]
    #: whether the tool receives the runtime's idempotency key (``run_id:seq``)
    accepts_idempotency_key: bool
    #: where the tool came from (``module:qualname`` or ``openapi:spec#operationId``)
    source: str
    #: ``python`` or ``openapi`` (policies may treat them differently)
    kind: str = "python"
    #: the tool reaches the network: the guards check its destinations against the egress
    #: policy (URL arguments before the call; each request of its client, `tether.tools.network`)
    network: bool = False
    #: a human must approve each call (enforced by the guards' policy gateway)
    requires_approval: bool
    #: approvals must be signed by two people (implies ``requires_approval``)
    critical: bool
    #: what one call needs from the machine (keys of the runtime's ``Resources``): a worker
    #: with a Ray executor runs the call as a Ray task with them reserved; None: in the worker
    resources: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        name: str,
        version: str,
        description: str,
        side_effect: str,
        idempotent: bool,
        timeout: float | None,
        retries: int,
        parameters: dict[str, Any],
        accepts_idempotency_key: bool,
        source: str,
        requires_approval: bool = False,
        critical: bool = False,
        resources: dict[str, Any] | None = None,
    ) -> None:
        check_metadata(name, version, side_effect, timeout, retries)
        self.resources = check_resources(name, resources)
        self.name = name
        self.version = version
        self.description = description
        self.side_effect = side_effect  # type: ignore[assignment]
        self.idempotent = bool(idempotent)
        self.timeout = timeout
        self.retries = retries
        self.parameters = parameters
        self.accepts_idempotency_key = accepts_idempotency_key
        self.source = source
        self.critical = bool(critical)
        self.requires_approval = bool(requires_approval) or self.critical

    # -- schema ---------------------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        """The provider-neutral definition sent to a model: name, description, parameters."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def contract(self) -> dict[str, Any]:
        """Everything a caller depends on; its hash is what ``tools.lock.json`` pins."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "side_effect": self.side_effect,
            "idempotent": self.idempotent,
            "requires_approval": self.requires_approval,
            "critical": self.critical,
            "parameters": self.parameters,
        }

    @property
    def schema_hash(self) -> str:
        return schema_hash(self.contract())

    # -- calling --------------------------------------------------------------------------

    @abstractmethod
    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check proposed arguments; return them normalised (defaults filled, JSON values).

        Raises :class:`ToolArgumentError` whose message can be shown to the model.
        """

    def validated(self, arguments: Any) -> ValidatedArguments:
        """:meth:`validate`, as read-only arguments this tool then runs on without a second pass.

        Validate once, early (the guards' policy gateway does, to judge what the tool will
        receive), and hand the result on: the runtime's check, :meth:`invoke`, :meth:`run` and
        another ``validated`` of *this* tool take it as it is; anything else (a plain dict, a
        copy, another tool's) is validated in full. Raises :class:`ToolArgumentError`.
        """
        if validated_by(arguments, self):
            return arguments
        return ValidatedArguments(self, self.validate(arguments))

    @abstractmethod
    async def _execute(self, arguments: dict[str, Any], idempotency_key: str | None) -> Any:
        """Perform the call with already validated arguments (a :class:`ValidatedArguments`
        of this tool when it comes through :meth:`invoke`)."""

    async def invoke(self, arguments: Any, *, idempotency_key: str | None = None) -> Any:
        """Validate (unless :meth:`validated` already did), then run with the tool's timeout and
        retries; return a JSON value.

        Retries reuse the same idempotency key: they are attempts of one logical effect.
        Argument errors are never retried (the same input would fail the same way).
        """
        args = self.validated(arguments)
        attempt = 0
        while True:
            try:
                if self.timeout is None:
                    value = await self._execute(args, idempotency_key)
                else:
                    # a deadline on this task; one timer for all calls in flight (_deadline)
                    try:
                        value = await bounded(self._execute(args, idempotency_key),
                                              self.timeout)
                    except TimeoutError:
                        raise ToolTimeoutError(self.name, self.timeout) from None
                break
            except ToolArgumentError:
                raise
            except Exception as exc:
                if attempt >= self.retries or (isinstance(exc, ToolTimeoutError) and not (
                        self.idempotent or self.accepts_idempotency_key)):
                    # a call that timed out may have acted (or still act: a sync tool's thread
                    # runs on): another attempt of a tool not safe to repeat could act twice
                    raise
                attempt += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
        # outside the retries: the tool ran, its effect took place; a result the journal
        # cannot hold is no reason to run it again
        return to_json_value(self.name, value, ran=True)

    async def run(self, arguments: Any, *, idempotency_key: str | None = None) -> ToolResult:
        """Like :meth:`invoke` but never raises for tool failures: returns a :class:`ToolResult`.

        This is what an agent shows the model: a failure becomes an observation, not a crash.
        """
        try:
            output = await self.invoke(arguments, idempotency_key=idempotency_key)
        except Exception as e:  # any tool failure becomes data the model can react to
            return ToolResult.failure(self.name, e)
        return ToolResult(tool=self.name, ok=True, output=output)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name}@{self.version} side_effect={self.side_effect} "
            f"idempotent={self.idempotent}>"
        )


class ToolFailure(BaseModel):
    """Why a tool call failed, in a form that survives the journal (plain JSON)."""

    #: ``invalid_arguments``, ``unknown_tool``, ``timeout``, ``execution_error`` or ``http_error``
    type: str
    message: str
    #: the exception class name, for humans reading a trace
    exception: str | None = None
    #: HTTP status for OpenAPI tools
    status: int | None = None


class ToolResult(BaseModel):
    """The outcome of one tool call, success or failure."""

    tool: str
    ok: bool
    output: Any = None
    error: ToolFailure | None = None

    @classmethod
    def failure(cls, tool: str, exc: BaseException) -> ToolResult:
        if isinstance(exc, ToolError):
            kind = exc.kind
        elif isinstance(exc, TimeoutError):
            kind = "timeout"
        else:
            kind = "execution_error"
        status = getattr(exc, "status", None)
        if kind == "execution_error" and status is not None:
            kind = "http_error"
        message = str(exc) or type(exc).__name__
        return cls(
            tool=tool,
            ok=False,
            error=ToolFailure(
                type=kind,
                message=message,
                exception=type(exc).__name__,
                status=status if isinstance(status, int) else None,
            ),
        )

    def observation(self) -> str:
        """Text for the model: the JSON output, or an error it can act on."""
        if self.ok:
            if isinstance(self.output, str):
                return self.output
            return orjson.dumps(self.output).decode()
        assert self.error is not None
        return f"ERROR ({self.error.type}): {self.error.message}"
