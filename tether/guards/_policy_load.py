"""Reading a policy from YAML (`loads_policy`, `load_policy`): every key checked, every error
names its line (`PolicyLoadError`), unknown keys and YAML merge keys refused, each condition's
operand checked against what its operator needs (`_argchecks.OPERATORS`). Public through
`tether.guards.policy`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tether.guards import _argchecks as ac
from tether.guards._policy_decide import Policy
from tether.guards._policy_rules import Condition, Rule
from tether.guards.egress import EgressEntryError, EgressPolicy, parse_rule
from tether.guards.errors import PolicyLoadError

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
