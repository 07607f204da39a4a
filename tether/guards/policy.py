"""The policy gateway: deny by default, decided by rules read from a YAML file.

Precedence (most restrictive first) and why:
1. honeypots   - a call to a bait tool must be flagged even if some rule would have denied it;
2. read_only   - a read-only agent/tenant cannot be talked out of it by a broad allow rule;
3. egress      - a network tool may only reach allow-listed hosts *and ports* (`egress.py`);
4. rules       - any matching `deny` beats any matching `approve`, which beats `allow`;
5. default     - nothing matched: deny, and say which rules nearly matched and why they did not;
then a tool whose own metadata demands approval turns an `allow` into `approve`.

Conditions judge the arguments as given; `PolicyGate` gives them the arguments the tool will
receive (parsed, validated and coerced by the tool, paths resolved). A condition that cannot be
evaluated on them (missing argument, wrong type) counts as matching a `deny` or `approve` rule and
as not matching an `allow` rule: a value the rule did not foresee never turns a refusal into a
permission.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tether.guards import _argchecks as ac
from tether.guards.egress import EgressEntryError, EgressPolicy, parse_rule
from tether.guards.errors import PolicyLoadError

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


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...] = ()
    read_only: bool = False
    honeypots: tuple[str, ...] = ()
    egress: EgressPolicy = field(default_factory=EgressPolicy)  # empty: no destination allowed
    source: str = "<policy>"
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ decide
    def decide(self, tool: ToolInfo | str, args: Any = None) -> PolicyDecision:
        info = tool if isinstance(tool, ToolInfo) else ToolInfo(name=tool)
        args = {} if args is None else args
        trace: list[TraceEntry] = []

        def done(action: Action, rule: str, reason: str, line: int | None, critical: bool = False
                 ) -> PolicyDecision:
            trace.append(TraceEntry(rule, line, "decided", reason))
            return PolicyDecision(action, rule, reason, info.name, self.name, line, critical,
                            tuple(trace))

        for glob in self.honeypots:
            if fnmatch.fnmatchcase(info.name, glob):
                return done("honeypot", f"honeypot:{glob}",
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
        for rule in self.rules:
            if not rule.matches_tool(info.name):
                continue
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

    def path_args(self, tool: str) -> set[str]:
        """The (dotted) arguments of `tool` some rule checks with `path_under`: the gateway
        resolves them before deciding and hands the tool the resolved paths."""
        return {c.arg for r in self.rules if r.matches_tool(tool) for c in r.conditions
                if c.op == "path_under"}

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

    def path_args(self, tool: str) -> set[str]:
        return set().union(*(p.path_args(tool) for p in self.policies))

    def egress_check(self, url: str) -> tuple[bool, str]:
        """Every policy must allow the destination."""
        for p in self.policies:
            ok, why = p.egress_check(url)
            if not ok:
                return False, f"{why} (policy {p.name})"
        return True, "allowed by every policy"


# ====================================================================== loading
_TOP_KEYS = {"version", "name", "read_only", "honeypots", "http", "egress", "rules", "default",
             "description"}
_RULE_KEYS = {"id", "tools", "effect", "args", "critical", "description", "pii"}


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node | None, reason: str) -> PolicyLoadError:
        return PolicyLoadError(reason, _line(node) if node is not None else None, self.source)

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode) or not isinstance(k.value, str):
                raise self.fail(k, f"{what}: keys must be strings")
            if k.tag == "tag:yaml.org,2002:merge":
                raise self.fail(k, f"{what}: YAML merge keys ('<<') are not allowed in policies")
            if k.value in out:
                raise self.fail(k, f"{what}: duplicate key '{k.value}'")
            out[k.value] = (k, v)
        return out

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a scalar")
        return self.value(node, what)

    def value(self, node: Node, what: str) -> Any:
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.fail(node, f"{what}: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise self.fail(node, f"{what}: {exc}") from None

    def string(self, node: Node, what: str) -> str:
        v = self.scalar(node, what)
        if not isinstance(v, str) or not v:
            raise self.fail(node, f"{what} must be a non-empty string")
        return v

    def boolean(self, node: Node, what: str) -> bool:
        v = self.scalar(node, what)
        if not isinstance(v, bool):
            raise self.fail(node, f"{what} must be true or false")
        return v

    def strlist(self, node: Node, what: str, allow_single: bool = True) -> tuple[str, ...]:
        if isinstance(node, ScalarNode) and allow_single:
            return (self.string(node, what),)
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} must be a list of strings")
        if not node.value:
            raise self.fail(node, f"{what} must not be empty")
        return tuple(self.string(n, f"{what} item") for n in node.value)

    # --------------------------------------------------------------- document
    def document(self, root: Node | None) -> Policy:
        if root is None:
            raise PolicyLoadError("empty policy file", 1, self.source)
        top = self.mapping(root, "policy")
        lines: dict[str, int] = {}
        for key, (knode, _) in top.items():
            if key not in _TOP_KEYS:
                raise self.fail(knode, f"unknown top-level key '{key}' (expected one of "
                                       f"{', '.join(sorted(_TOP_KEYS))})")
            lines[key] = _line(knode)
        if "version" in top:
            knode, vnode = top["version"]
            if self.scalar(vnode, "version") != 1:
                raise self.fail(vnode, "unsupported policy version (expected 1)")
        if "default" in top:
            _, dnode = top["default"]
            if self.scalar(dnode, "default") != "deny":
                raise self.fail(dnode, "default must be 'deny' (policies are deny by default)")
        name = self.string(top["name"][1], "name") if "name" in top else Path(self.source).stem
        read_only = self.boolean(top["read_only"][1], "read_only") if "read_only" in top else False
        honeypots = self.strlist(top["honeypots"][1], "honeypots") if "honeypots" in top else ()
        egress = self.egress(top)
        rules: list[Rule] = []
        if "rules" in top:
            rnode = top["rules"][1]
            if not isinstance(rnode, SequenceNode):
                raise self.fail(rnode, "rules must be a list")
            seen: dict[str, int] = {}
            for i, item in enumerate(rnode.value):
                rule = self.rule(item, i)
                if rule.id in seen:
                    raise self.fail(item, f"duplicate rule id '{rule.id}' "
                                          f"(first defined on line {seen[rule.id]})")
                seen[rule.id] = rule.line
                rules.append(rule)
        return Policy(name=name, rules=tuple(rules), read_only=read_only, honeypots=honeypots,
                      egress=egress, source=self.source, lines=lines)

    def egress(self, top: dict[str, tuple[Node, Node]]) -> EgressPolicy:
        """`egress: {allow: [host:port, ...]}`, or its older spelling `http: {allow_domains:
        [...]}` (same entries, same meaning: a name without a port allows the default ports)."""
        if "egress" in top and "http" in top:
            raise self.fail(top["http"][0], "both 'egress' and 'http' are given: keep "
                                            "'egress.allow' ('http.allow_domains' is its older "
                                            "spelling)")
        section, key = ("egress", "allow") if "egress" in top else ("http", "allow_domains")
        if section not in top:
            return EgressPolicy(label="egress.allow")
        body = self.mapping(top[section][1], section)
        for k, (knode, _) in body.items():
            if k != key:
                raise self.fail(knode, f"unknown key '{section}.{k}' (expected {key})")
        label = f"{section}.{key}"
        if key not in body:
            return EgressPolicy(label=label)
        return EgressPolicy(self.egress_rules(body[key][1], label), label)

    def egress_rules(self, node: Node, what: str) -> tuple[Any, ...]:
        """Each entry parsed; a bad one fails with its own line."""
        entries = self.strlist(node, what)
        rules = []
        for text, item in zip(entries, _items(node), strict=True):
            try:
                rules.append(parse_rule(text))
            except EgressEntryError as exc:
                raise self.fail(item, f"{what}: {exc}") from None
        return tuple(rules)

    def rule(self, node: Node, index: int) -> Rule:
        m = self.mapping(node, f"rule #{index + 1}")
        for key, (knode, _) in m.items():
            if key not in _RULE_KEYS:
                raise self.fail(knode, f"rule #{index + 1}: unknown key '{key}' (expected one of "
                                       f"{', '.join(sorted(_RULE_KEYS))})")
        for required in ("tools", "effect"):
            if required not in m:
                raise self.fail(node, f"rule #{index + 1}: missing required key '{required}'")
        rid = self.string(m["id"][1], "rule id") if "id" in m else f"rule-{index + 1}"
        tools = self.strlist(m["tools"][1], f"rule '{rid}': tools")
        enode = m["effect"][1]
        effect = self.scalar(enode, "effect")
        if effect not in ("allow", "deny", "approve"):
            raise self.fail(enode, f"rule '{rid}': effect must be allow, deny or approve "
                                   f"(got {effect!r})")
        critical = self.boolean(m["critical"][1], "critical") if "critical" in m else False
        if critical and effect != "approve":
            raise self.fail(m["critical"][0], f"rule '{rid}': critical only applies to "
                                              "effect: approve")
        desc = self.string(m["description"][1], "description") if "description" in m else ""
        conds: list[Condition] = []
        if "args" in m:
            for arg, (anode, spec) in self.mapping(m["args"][1], f"rule '{rid}': args").items():
                ops = self.mapping(spec, f"rule '{rid}': args.{arg}")
                if not ops:
                    raise self.fail(spec, f"rule '{rid}': args.{arg} has no condition")
                for op, (onode, operand) in ops.items():
                    conds.append(self.condition(rid, arg, op, onode, operand))
                del anode
        pii: tuple[str, ...] = ()
        if "pii" in m:  # which placeholders the tool gets filled in (tether/guards/_pii_release)
            pii = tuple(k.lower() for k in self.strlist(m["pii"][1], f"rule '{rid}': pii"))
            bad = [k for k in pii if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
            if effect == "deny" or bad:
                raise self.fail(m["pii"][1], f"rule '{rid}': pii " + (
                    "only applies to allow and approve rules" if effect == "deny" else
                    f"lists PII kinds such as email, phone, card (got {bad[0]!r})"))
        return Rule(rid, tools, effect, tuple(conds), critical, desc, _line(node), pii)

    def condition(self, rid: str, arg: str, op: str, onode: Node, operand: Node) -> Condition:
        if op not in ac.OPERATORS:
            raise self.fail(onode, f"rule '{rid}': unknown condition '{op}' on '{arg}' "
                                   f"(expected one of {', '.join(sorted(ac.OPERATORS))})")
        kind = ac.OPERATORS[op][1]
        where = f"rule '{rid}': args.{arg}.{op}"
        val = self.value(operand, where)
        if kind == "list" and not isinstance(val, list):
            raise self.fail(operand, f"{where} must be a list")
        if kind == "strlist" and (not isinstance(val, list) or not val
                                  or not all(isinstance(x, str) for x in val)):
            raise self.fail(operand, f"{where} must be a non-empty list of host names")
        if op == "domain_in":
            self.egress_rules(operand, where)  # same entries as egress.allow, same line numbers
        if kind == "str" and (not isinstance(val, str) or not val):
            raise self.fail(operand, f"{where} must be a non-empty string")
        if kind == "number" and (isinstance(val, bool) or not isinstance(val, int | float)):
            raise self.fail(operand, f"{where} must be a number")
        if kind == "int" and (isinstance(val, bool) or not isinstance(val, int) or val < 0):
            raise self.fail(operand, f"{where} must be a non-negative integer")
        if kind == "sql" and val != "read_only":
            raise self.fail(operand, f"{where} must be 'read_only'")
        if kind == "regex":
            if not isinstance(val, str):
                raise self.fail(operand, f"{where} must be a regular expression string")
            try:
                val = re.compile(val)
            except re.error as exc:
                raise self.fail(operand, f"{where}: invalid regular expression: {exc}") from None
        if op == "path_under" and not val.startswith("/"):
            raise self.fail(operand, f"{where} must be an absolute path")
        return Condition(arg, op, val, _line(onode))


def _items(node: Node) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else [node]


def loads_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate; every error names the line (PolicyLoadError)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyLoadError(f"invalid YAML: {exc.problem or exc}", line, source) from None
    except yaml.YAMLError as exc:
        raise PolicyLoadError(f"invalid YAML: {exc}", None, source) from None
    return _Loader(source).document(root)


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyLoadError(f"cannot read policy file: {exc.strerror}", None, str(p)) from None
    except UnicodeDecodeError:
        raise PolicyLoadError("policy file is not UTF-8", None, str(p)) from None
    return loads_policy(text, source=str(p))
