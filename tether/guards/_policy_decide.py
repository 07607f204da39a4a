"""`Policy.decide` and `PolicySet.decide`: deny by default, the most restrictive outcome wins.

Precedence (most restrictive first) and why:
1. honeypots   - a call to a bait tool must be flagged even if some rule would have denied it;
2. read_only   - a read-only agent/tenant cannot be talked out of it by a broad allow rule;
3. egress      - a network tool may only reach allow-listed hosts *and ports* (`egress.py`);
4. rules       - any matching `deny` beats any matching `approve`, which beats `allow`;
5. default     - nothing matched: deny, and say which rules nearly matched and why they did not;
then a tool whose own metadata demands approval turns an `allow` into `approve`.

Conditions judge the arguments as given; `PolicyGate` gives them the arguments the tool will
receive (parsed, validated and coerced by the tool, paths resolved). Public through
`tether.guards.policy`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from tether.guards import _argchecks as ac
from tether.guards._policy_rules import (
    _RANK,
    Action,
    PolicyDecision,
    Rule,
    ToolInfo,
    TraceEntry,
)
from tether.guards.egress import EgressPolicy

# how many tool names a policy remembers what applies to (the names come from the model: a
# hostile one sending new names forever must not grow memory; past this they are looked up anew)
_MEMO_NAMES = 1024
# decisions remembered per name (one per distinct `ToolInfo`: a registry has few per name)
_MEMO_DECISIONS = 16
_GRANTING = ("allow", "approve")


@dataclass(frozen=True, slots=True)
class ToolRules:
    """What of a policy applies to one tool name: it depends on the name alone, so it is worked
    out once per name (globs matched once) instead of on every call."""

    honeypot: str | None  # the first honeypot glob the name matches
    rules: tuple[Rule, ...]  # the rules whose `tools` globs match the name, in policy order
    path_args: frozenset[str]  # arguments those rules check with `path_under`
    pii: frozenset[str]  # PII kinds those of them that allow or approve may grant
    # no rule here has an argument condition: a decision on a tool that does not reach the
    # network (no egress check of URLs in the arguments) then reads no argument at all, and
    # is the same for every call with the same `ToolInfo`
    args_free: bool
    decisions: dict[ToolInfo, PolicyDecision] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...] = ()
    read_only: bool = False
    honeypots: tuple[str, ...] = ()
    egress: EgressPolicy = field(default_factory=EgressPolicy)  # empty: no destination allowed
    source: str = "<policy>"
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    _by_tool: dict[str, ToolRules] = field(default_factory=dict, init=False, repr=False,
                                           compare=False)

    def __post_init__(self) -> None:
        # what `for_tool` remembers is derived from these: they must not change afterwards
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "honeypots", tuple(self.honeypots))

    def for_tool(self, name: str) -> ToolRules:
        """The honeypot and the rules that apply to tool `name` (remembered per name)."""
        found = self._by_tool.get(name)
        if found is not None:
            return found
        rules = tuple(r for r in self.rules if r.matches_tool(name))
        found = ToolRules(
            honeypot=next((g for g in self.honeypots if fnmatch.fnmatchcase(name, g)), None),
            rules=rules,
            path_args=frozenset(c.arg for r in rules for c in r.conditions
                                if c.op == "path_under"),
            pii=frozenset(k for r in rules if r.effect in _GRANTING for k in r.pii),
            args_free=not any(r.conditions for r in rules))
        if len(self._by_tool) < _MEMO_NAMES:
            self._by_tool[name] = found
        return found

    # ------------------------------------------------------------------ decide
    def decide(self, tool: ToolInfo | str, args: Any = None) -> PolicyDecision:
        info = tool if isinstance(tool, ToolInfo) else ToolInfo(name=tool)
        applies = self.for_tool(info.name)
        if not applies.args_free or info.reaches_network:
            return self._decide(info, {} if args is None else args, applies)
        # the decision reads no argument (see `ToolRules.args_free`): made once per `ToolInfo`
        decision = applies.decisions.get(info)
        if decision is None:
            decision = self._decide(info, {} if args is None else args, applies)
            if len(applies.decisions) < _MEMO_DECISIONS:
                applies.decisions[info] = decision
        return decision

    def _decide(self, info: ToolInfo, args: Any, applies: ToolRules) -> PolicyDecision:
        trace: list[TraceEntry] = []

        def done(action: Action, rule: str, reason: str, line: int | None, critical: bool = False
                 ) -> PolicyDecision:
            trace.append(TraceEntry(rule, line, "decided", reason))
            return PolicyDecision(action, rule, reason, info.name, self.name, line, critical,
                            tuple(trace))

        if applies.honeypot is not None:
            return done("honeypot", f"honeypot:{applies.honeypot}",
                        "honeypot tool: simulated success, run flagged for review",
                        self.lines.get("honeypots"))
        if self.read_only:
            if info.side_effect != "read":
                effect = info.side_effect or "unknown (treated as destructive)"
                return done("deny", "read_only", f"read-only mode blocks side effect {effect}",
                            self.lines.get("read_only"))
            trace.append(TraceEntry("read_only", self.lines.get("read_only"), "matched",
                                    "tool is read-only"))
        if info.reaches_network:
            rule_name = self.egress.label
            line = self.lines.get(rule_name.split(".")[0])
            urls = ac.iter_urls(args) + ([info.base_url] if info.base_url else [])
            if not urls:
                trace.append(TraceEntry(rule_name, line, "skipped", "no URL in the arguments "
                                        "(its client checks each request it sends)"))
            for url in urls:
                ok, why = self.egress.check(url)
                if not ok:
                    return done("deny", rule_name, why, line)
            if urls:
                trace.append(TraceEntry(rule_name, line, "matched",
                                        "every URL's host and port is allow-listed"))

        matched: dict[str, list[tuple[Rule, str]]] = {"deny": [], "approve": [], "allow": []}
        for rule in applies.rules:
            ok, why = rule.judge(args)
            if not ok:
                trace.append(TraceEntry(rule.id, rule.line, "no-match", why))
                continue
            trace.append(TraceEntry(rule.id, rule.line, "matched", f"{rule.effect}: {why}"))
            matched[rule.effect].append((rule, why))

        if matched["deny"]:
            rule, why = matched["deny"][0]
            return done("deny", rule.id, rule.description or why, rule.line)
        if matched["approve"]:
            critical = any(r.critical for r, _ in matched["approve"]) or info.critical
            rule, why = next(((r, w) for r, w in matched["approve"] if r.critical),
                             matched["approve"][0])
            return done("approve", rule.id, rule.description or f"approval required ({why})",
                        rule.line, critical)
        if matched["allow"]:
            rule, why = matched["allow"][0]
            if info.requires_approval or info.critical:
                return done("approve", f"tool:{info.name}",
                            f"allowed by '{rule.id}' but the tool requires approval",
                            None, info.critical)
            return done("allow", rule.id, rule.description or why, rule.line)
        near = [t for t in trace if t.outcome == "no-match"]
        reason = "no rule allows this action (deny by default)"
        if near:
            reason += "; " + "; ".join(f"'{t.rule}' did not match: {t.note}" for t in near)
        return done("deny", "default", reason, None)

    def path_args(self, tool: str) -> frozenset[str]:
        """The (dotted) arguments of `tool` some rule checks with `path_under`: the gateway
        resolves them before deciding and hands the tool the resolved paths."""
        return self.for_tool(tool).path_args

    def egress_check(self, url: str) -> tuple[bool, str]:
        """Whether a network tool cleared by this policy may send a request to `url`."""
        return self.egress.check(url)


class PolicySet:
    """Tenant policy and agent policy together: each must agree, the most restrictive wins."""

    def __init__(self, *policies: Policy) -> None:
        if not policies:
            raise ValueError("a PolicySet needs at least one policy (deny by default)")
        self.policies = policies

    def decide(self, tool: ToolInfo | str, args: Any = None) -> PolicyDecision:
        decisions = [p.decide(tool, args) for p in self.policies]
        worst = max(decisions, key=lambda d: _RANK[d.action])
        if worst.action == "approve" and any(d.critical for d in decisions):
            worst = PolicyDecision(worst.action, worst.rule, worst.reason, worst.tool, worst.policy,
                             worst.line, True, worst.trace)
        return worst

    def path_args(self, tool: str) -> frozenset[str]:
        return frozenset().union(*(p.path_args(tool) for p in self.policies))

    def egress_check(self, url: str) -> tuple[bool, str]:
        """Every policy must allow the destination."""
        for p in self.policies:
            ok, why = p.egress_check(url)
            if not ok:
                return False, f"{why} (policy {p.name})"
        return True, "allowed by every policy"
