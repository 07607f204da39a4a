"""`PolicyGate`: the policy decision on one proposed tool call, made on the arguments the tool will
actually receive, with what the tool registry says about the tool (side effect, kind, approval
requirements).

Issue 13 found rules judging one thing while the tool received another: `{"user_id": 1.0}` passed
a `deny` on `user_id in [1]` and the tool coerced it to 1; a JSON *string* of arguments hid every
argument from the rules; a repeated key showed the approvers one recipient and paid another;
`path_under` judged a path lexically while the tool followed a symlink out. So the gate first
makes the arguments what the tool will get (`prepare`), and only then decides on them; the
gateway hands the tool exactly those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal

from tether.guards import _argchecks as ac
from tether.guards.policy import Policy, PolicyDecision, PolicySet, ToolInfo
from tether.tools import FieldError, ToolArgumentError, ToolError
from tether.tools._base import coerce_arguments
from tether.tools._validated import ValidatedArguments

if TYPE_CHECKING:
    from tether.tools import Tool, ToolRegistry

# the rule named in a decision refusing arguments that cannot be judged
ARGUMENTS_RULE = "arguments"


class _Lookup(Enum):
    IN_REGISTRY = "look the tool up in the registry"


#: `tool=` default of the gate's methods: look the tool up; a caller that has looked it up
#: already (`PolicyGate.lookup`) passes what it found (None: no such tool), once per call
LOOKUP: Final = _Lookup.IN_REGISTRY
_MEMO_INFOS = 1024  # tool names whose last ToolInfo is kept


class PolicyGate:
    def __init__(self, tools: ToolRegistry | None = None) -> None:
        self.tools = tools
        # tool name -> (the metadata last read, the ToolInfo made of it); registered names only
        self._infos: dict[str, tuple[tuple[Any, ...], ToolInfo]] = {}

    def lookup(self, name: str, registry: ToolRegistry | None = None,
               version: str | None = None) -> Tool | None:
        """The tool `name` of `registry` (default: the gate's) — its newest version, or exactly
        `version` — None if there is none."""
        tools = registry if registry is not None else self.tools
        if tools is None:
            return None
        try:
            return tools.get(name, version)
        except Exception:
            return None

    def tool_info(self, name: str, registry: ToolRegistry | None = None, *,
                  tool: Tool | Literal[_Lookup.IN_REGISTRY] | None = LOOKUP) -> ToolInfo:
        """What the policy knows of tool `name`: its metadata, read from the tool every call
        (a tool's attributes can change), made into a `ToolInfo` only when it differs from the
        last one made for that name (a policy remembers its decisions per `ToolInfo`)."""
        if tool is LOOKUP:
            tool = self.lookup(name, registry)
        if tool is None:
            return ToolInfo(name=name)
        facts = (tool.side_effect,
                 "openapi" if hasattr(tool, "base_url") else str(getattr(tool, "kind", "python")),
                 getattr(tool, "base_url", None),
                 bool(getattr(tool, "requires_approval", False)),
                 bool(getattr(tool, "critical", False)),
                 bool(getattr(tool, "network", False)))
        known = self._infos.get(name)
        if known is not None and known[0] == facts:
            return known[1]
        side_effect, kind, base_url, requires_approval, critical, network = facts
        info = ToolInfo(name=name, side_effect=side_effect, kind=kind, base_url=base_url,
                        requires_approval=requires_approval, critical=critical, network=network)
        if known is not None or len(self._infos) < _MEMO_INFOS:
            self._infos[name] = (facts, info)
        return info

    @staticmethod
    def parse(name: str, arguments: Any) -> dict[str, Any]:
        """The proposal as a JSON object: a JSON text is parsed strictly (no repair, no
        duplicate key), anything but an object is refused. Raises `ToolArgumentError`."""
        try:
            return coerce_arguments(name, arguments, repair=False)
        except UnicodeDecodeError as exc:
            raise ToolArgumentError(name, [FieldError(
                "", f"arguments are not UTF-8 text ({exc.reason})")]) from None

    def prepare(self, policy: Policy | PolicySet | None, name: str, arguments: dict[str, Any],
                registry: ToolRegistry | None = None, *,
                tool: Tool | Literal[_Lookup.IN_REGISTRY] | None = LOOKUP) -> dict[str, Any]:
        """`arguments` (parsed) exactly as the tool will receive them, which is what the policy
        must judge: validated and coerced by the tool's own schema, every path a `path_under`
        rule checks resolved (symlinks followed, `..` collapsed, relative to the working
        directory the tool opens it from). Raises `ToolArgumentError` when the tool rejects
        them, when validating them again would change them (the tool would then run on
        something else than what was judged and approved), or when canonical JSON cannot
        represent them (NaN, infinities: the approval digest would not cover them). With a tool,
        what it returns is the tool's `ValidatedArguments`: read-only, run on as they are."""
        if tool is LOOKUP:
            tool = self.lookup(name, registry)
        args = tool.validate(arguments) if tool is not None else dict(arguments)
        paths = policy.path_args(name) if policy is not None else frozenset()
        if paths:
            args = _resolve_paths(args, paths)
        if tool is not None and not paths and getattr(tool, "stable_validation", False):
            # validating them again gives them back unchanged (the tool's schema says so): the
            # stability check below could not fail
            args = ValidatedArguments(tool, args)
        elif tool is not None:
            # validated once more: the stability check, whose result the tool then runs on as it
            # is (read-only `ValidatedArguments`: the runtime's check and the tool's own run take
            # them without validating them again)
            again = tool.validated(args)
            if again != args:
                raise ToolArgumentError(name, [FieldError(
                    "", "the tool's validation is not stable: validating the validated "
                    f"arguments {args!r} gives {dict(again)!r}, so the tool would not run on "
                    "what was judged; make its validators idempotent")])
            args = again
        where = _not_canonical_json(args)
        if where is not None:
            raise ToolArgumentError(name, [FieldError(
                where, "not representable in canonical JSON (NaN, an infinity or a number too "
                "large); send a finite number")])
        return args

    def judge(self, policy: Policy | PolicySet | None, name: str, prepared: dict[str, Any],
              registry: ToolRegistry | None = None, *,
              tool: Tool | Literal[_Lookup.IN_REGISTRY] | None = LOOKUP) -> PolicyDecision:
        """The decision on arguments `prepare` returned; no policy denies (deny by default).

        A pure decision: the egress rules a cleared call's HTTP client follows are armed by the
        interceptor, in the task that runs the step, not here (a decision made outside any run
        must not change what later tool calls in the caller's context may reach)."""
        if policy is None:
            return PolicyDecision("deny", "no-policy", "no policy configured (deny by default)",
                                  name)
        return policy.decide(self.tool_info(name, registry, tool=tool), prepared)

    def decide(self, policy: Policy | PolicySet | None, name: str, args: Any,
               registry: ToolRegistry | None = None) -> PolicyDecision:
        """The run's policy on calling `name` with `args` as proposed (parsed and prepared
        here); arguments that cannot be prepared are denied."""
        if policy is None:
            return self.judge(policy, name, {}, registry)
        tool = self.lookup(name, registry)
        try:
            prepared = self.prepare(policy, name, self.parse(name, args), tool=tool)
        except ToolError as exc:
            return PolicyDecision("deny", ARGUMENTS_RULE, f"the arguments cannot be judged: {exc}",
                                  name)
        return self.judge(policy, name, prepared, tool=tool)


    def decide_direct(self, policy: Policy | PolicySet | None, name: str, args: Any,
                      meta: Mapping[str, Any]) -> PolicyDecision:
        """The policy on a tool step agent code made without the gateway (`ctx.tool`), judged
        on the tool the step *runs*, which its meta describes (`tether.tools.effect`).

        `decide` would judge the newest version in the guards' registry, while `ctx.tool(...,
        version="1")` or another registry's tool of the same name runs something else: an old
        destructive version passed a read-only policy as its harmless successor, and a version
        that requires approval ran as the newer one that does not. So the exact version the
        step names is looked up; if the guards' registry does not hold it, or holds a tool of
        that name and version with other facts (another registry's tool), the call is judged as
        an unknown tool (side effect unknown, treated as destructive; the approvals the step
        says it needs; arguments as proposed)."""
        if policy is None or not isinstance(meta.get("version"), str):
            return self.decide(policy, name, args)  # a step that names no tool version
        tool = self.lookup(name, version=meta["version"])
        if tool is not None and not _same_facts(tool, meta):
            tool = None
        if tool is None:
            info = ToolInfo(name=name, requires_approval=bool(meta.get("requires_approval")),
                            critical=bool(meta.get("critical")))
        else:
            info = self.tool_info(name, tool=tool)
        try:
            prepared = self.prepare(policy, name, self.parse(name, args), tool=tool)
        except ToolError as exc:
            return PolicyDecision("deny", ARGUMENTS_RULE, f"the arguments cannot be judged: {exc}",
                                  name)
        return policy.decide(info, prepared)


def _same_facts(tool: Tool, meta: Mapping[str, Any]) -> bool:
    """Whether the tool step's meta describes `tool` (not another tool of that name)."""
    return (meta.get("side_effect") == tool.side_effect
            and bool(meta.get("requires_approval")) == bool(tool.requires_approval)
            and bool(meta.get("critical")) == bool(tool.critical))


def _resolve_paths(args: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """`args` with each named string argument replaced by the path the tool would open; a path
    that cannot be resolved stays as it is (its `path_under` condition cannot be evaluated)."""
    out: Any = args
    for name in sorted(names):
        value = ac.lookup(out, name)
        if isinstance(value, str):
            try:
                out = ac.replace_at(out, name, ac.resolve_path(value))
            except ac.UnresolvablePath:
                continue
    return dict(out)


_INT_MIN, _INT_MAX = -(2**63), 2**64  # integers canonical JSON keeps: [min, max)


def _plain(value: Any) -> bool:
    """A scalar of an exact JSON type that canonical JSON keeps as it is (most arguments)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(_INT_MIN <= value < _INT_MAX)
    return kind is float and math.isfinite(value)


def _not_canonical_json(value: Any, where: str = "") -> str | None:
    """The dotted path of the first value canonical JSON would change (a non-finite float, an
    integer beyond 64 bits, a non-string key), or None."""
    if _plain(value):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, int) and not isinstance(value, bool) and \
            not _INT_MIN <= value < _INT_MAX:
        return where
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}.{k}" if where else str(k)
            if _plain(v):
                continue
            found = _not_canonical_json(v, f"{where}.{k}" if where else k)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            if _plain(v):
                continue
            found = _not_canonical_json(v, f"{where}.{i}" if where else str(i))
            if found is not None:
                return found
    return None
