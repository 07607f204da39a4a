"""What a policy is made of and what it decides: the tool as the policy sees it (`ToolInfo`),
a rule (`Rule`) and its argument conditions (`Condition`), and the verdict (`PolicyDecision`)
with the trace of how each rule judged the call (`TraceEntry`).

A condition that cannot be evaluated on the arguments (missing argument, wrong type) counts as
matching a `deny` or `approve` rule and as not matching an `allow` rule: a value the rule did not
foresee never turns a refusal into a permission. Public through `tether.guards.policy`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Literal

from tether.guards import _argchecks as ac

Action = Literal["allow", "deny", "approve", "honeypot"]
SideEffect = Literal["read", "write", "destructive"]
_RANK: dict[str, int] = {"allow": 0, "approve": 1, "deny": 2, "honeypot": 3}


@dataclass(frozen=True)
class ToolInfo:
    """What the gateway needs to know about a tool (taken from the tool registry's metadata).

    `side_effect=None` means unknown and is treated as `destructive`: deny by default.
    """

    name: str
    side_effect: SideEffect | None = None
    kind: str = "python"  # "http" and "openapi" tools always reach the network
    base_url: str | None = None
    requires_approval: bool = False
    critical: bool = False
    network: bool = False  # the tool says it reaches the network (`@tool(network=True)`)

    @property
    def reaches_network(self) -> bool:
        """Subject to the egress allow-list."""
        return self.network or self.kind in ("http", "openapi")


@dataclass(frozen=True)
class Condition:
    arg: str
    op: str
    operand: Any
    line: int

    def check(self, args: Any) -> ac.Check:
        """True / False, or None when it cannot be evaluated on `args` (see the module doc)."""
        ok, why = ac.check(self.op, ac.lookup(args, self.arg), self.operand)
        if ok is None:
            return None, f"{self.arg} {self.op}: cannot be evaluated ({why})"
        return ok, f"{self.arg} {self.op}: {why}"


@dataclass(frozen=True)
class Rule:
    id: str
    tools: tuple[str, ...]
    effect: Literal["allow", "deny", "approve"]
    conditions: tuple[Condition, ...] = ()
    critical: bool = False
    description: str = ""
    line: int = 0
    pii: tuple[str, ...] = ()  # PII kinds a call this rule allows may receive unmasked

    def matches_tool(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, g) for g in self.tools)

    def judge(self, args: Any) -> tuple[bool, str]:
        """(matches, why). A condition that cannot be evaluated matches a `deny`/`approve` rule
        (fail closed) and fails an `allow` rule."""
        if not self.conditions:
            return True, "tool name matches"
        results = [c.check(args) for c in self.conditions]
        unknown_matches = self.effect != "allow"
        failures = [why for ok, why in results if ok is False or (ok is None and
                                                                  not unknown_matches)]
        if failures:
            return False, "; ".join(failures)
        notes = [why + (" — counts as a match (fail closed)" if ok is None else "")
                 for ok, why in results]
        return True, "; ".join(notes) or "tool name matches"


@dataclass(frozen=True)
class TraceEntry:
    rule: str
    line: int | None
    outcome: str  # "decided", "matched", "no-match", "skipped"
    note: str


@dataclass(frozen=True)
class PolicyDecision:
    """The gateway's verdict on one proposed action; journaled verbatim."""

    action: Action
    rule: str
    reason: str
    tool: str
    policy: str = ""
    line: int | None = None
    critical: bool = False
    trace: tuple[TraceEntry, ...] = field(default=(), compare=False)

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "tool": self.tool,
            "policy": self.policy,
            "line": self.line,
            "critical": self.critical,
        }

    def explain(self) -> str:
        where = f" ({self.policy}:{self.line})" if self.line else ""
        lines = [f"{self.action.upper()} {self.tool} by rule '{self.rule}'{where}: {self.reason}"]
        for t in self.trace:
            loc = f" line {t.line}" if t.line else ""
            lines.append(f"  - {t.rule}{loc}: {t.outcome} — {t.note}")
        return "\n".join(lines)


