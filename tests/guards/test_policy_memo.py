"""What a policy remembers per tool name (`Policy.for_tool`) must never change a decision: it
holds only what depends on the name (globs matched), the arguments are judged on every call, and
the memory it takes is bounded whatever names a model makes up."""

from __future__ import annotations

import fnmatch
import random

from tether.guards import _policy_decide
from tether.guards.policy import Policy, PolicySet, Rule, ToolInfo, loads_policy

POLICY = """\
name: memo
honeypots: ["shut*", "delete_[a-c]ll"]
rules:
  - {id: search, tools: "search_*", effect: allow}
  - {id: one-char, tools: "get?", effect: allow, args: {id: {max: 10}}}
  - {id: not-x, tools: "[!x]*_file", effect: allow, args: {path: {path_under: /workspace}}}
  - {id: secrets, tools: "*_file", effect: deny, args: {path: {regex: ".*secret.*"}}}
  - {id: mail, tools: send_email, effect: allow, pii: [email], args: {to: {regex: '.+@corp'}}}
  - {id: big, tools: refund, effect: approve, pii: [card], args: {amount: {min: 100.01}}}
  - {id: small, tools: refund, effect: allow, args: {amount: {max: 100}}}
  - {id: block-refund, tools: "refund", effect: deny, args: {amount: {min: 1000}}}
"""

NAMES = ["search_web", "search_", "SEARCH_web", "get1", "get12", "read_file", "xread_file",
         "write_file", "send_email", "refund", "shutdown", "shut", "delete_all", "delete_dll",
         "unknown", "", "*", "read_file\x00", "search_web "]


def test_what_a_name_gets_is_what_matching_every_glob_gives():
    p = loads_policy(POLICY)
    for name in NAMES * 2:  # the second time from memory
        got = p.for_tool(name)
        assert got.rules == tuple(r for r in p.rules if r.matches_tool(name)), name
        assert got.honeypot == next(
            (g for g in p.honeypots if fnmatch.fnmatchcase(name, g)), None), name
        assert got.path_args == {c.arg for r in got.rules for c in r.conditions
                                 if c.op == "path_under"}
        assert got.pii == {k for r in got.rules if r.effect != "deny" for k in r.pii}


def test_a_remembered_name_is_decided_as_a_fresh_policy_decides_it():
    warm = loads_policy(POLICY)
    rng = random.Random(16)
    calls = [(name, {"id": rng.randrange(20), "path": rng.choice(
        ["/workspace/a", "/workspace/secret", "/etc/passwd"]), "to": rng.choice(
        ["a@corp", "a@evil"]), "amount": rng.choice([5, 100, 500, 5000])})
        for name in NAMES for _ in range(4)]
    for name, args in calls * 2:
        fresh = loads_policy(POLICY)  # nothing remembered
        info = ToolInfo(name, side_effect="read")
        a, b = warm.decide(info, args), fresh.decide(info, args)
        assert (a, a.explain()) == (b, b.explain()), (name, args)


def test_changed_arguments_are_judged_again_under_a_remembered_name():
    p = loads_policy(POLICY)
    info = ToolInfo("refund", side_effect="write")
    assert p.decide(info, {"amount": 50}).action == "allow"
    assert p.decide(info, {"amount": 500}).action == "approve"
    assert p.decide(info, {"amount": 5000}).action == "deny"
    assert p.decide(info, {"amount": 50}).action == "allow"
    assert p.decide(info, {"amount": "50"}).action == "deny"  # cannot be judged: not allowed


def test_made_up_names_do_not_grow_memory_and_are_still_decided():
    p = loads_policy(POLICY)
    for i in range(_policy_decide._MEMO_NAMES + 500):
        d = p.decide(ToolInfo(f"search_{i}", side_effect="read"), {})
        assert (d.action, d.rule) == ("allow", "search")
    assert len(p._by_tool) == _policy_decide._MEMO_NAMES
    d = p.decide(ToolInfo("shutdown_now", side_effect="read"), {})
    assert d.action == "honeypot"


def test_rules_given_as_a_list_cannot_change_under_the_memory():
    rules = [Rule("all", ("*",), "allow")]
    p = Policy("built", rules=rules)  # type: ignore[arg-type]
    assert p.decide(ToolInfo("x", side_effect="read")).action == "allow"
    rules.append(Rule("deny-x", ("x",), "deny"))
    assert isinstance(p.rules, tuple) and len(p.rules) == 1
    assert p.decide(ToolInfo("x", side_effect="read")).action == "allow"


def test_a_policy_set_unions_the_path_arguments_of_its_policies():
    tenant = loads_policy("name: t\nrules:\n  - {id: a, tools: f, effect: allow, "
                          "args: {src: {path_under: /a}}}\n")
    agent = loads_policy("name: g\nrules:\n  - {id: b, tools: f, effect: allow, "
                         "args: {dst: {path_under: /b}}}\n")
    assert PolicySet(tenant, agent).path_args("f") == {"src", "dst"}
    assert PolicySet(tenant, agent).path_args("g") == frozenset()


NAME_ONLY = """\
name: by-name
read_only: false
egress: {allow: [api.example.com]}
rules:
  - {id: adds, tools: add, effect: allow}
  - {id: fetches, tools: fetch, effect: allow}
  - {id: pays, tools: pay, effect: approve}
  - {id: pay-ok, tools: pay, effect: allow}
"""


def test_a_decision_that_reads_no_argument_is_made_once_per_tool_info():
    p = loads_policy(NAME_ONLY)
    read, write = ToolInfo("add", side_effect="read"), ToolInfo("add", side_effect="write")
    first = p.decide(read, {"a": 1})
    assert first.action == "allow" and p.decide(read, {"a": "anything"}) is first
    # another ToolInfo for the same name is another decision
    gated = ToolInfo("add", side_effect="read", requires_approval=True)
    assert p.decide(gated, {"a": 1}).action == "approve"
    assert p.decide(read, {"a": 1}) is first
    assert p.for_tool("add").decisions.keys() == {read, gated}
    ro = loads_policy(NAME_ONLY.replace("read_only: false", "read_only: true"))
    assert ro.decide(read).action == "allow" and ro.decide(write).action == "deny"
    assert ro.decide(read).action == "allow"
    pay = ToolInfo("pay", side_effect="write")
    assert p.decide(pay).action == "approve" == p.decide(pay, {"x": 1}).action


def test_a_network_tool_is_decided_on_its_arguments_every_time():
    p = loads_policy(NAME_ONLY)
    fetch = ToolInfo("fetch", side_effect="read", kind="http")
    assert p.decide(fetch, {"url": "https://api.example.com/x"}).action == "allow"
    evil = p.decide(fetch, {"url": "https://evil.example.net/x"})
    assert (evil.action, evil.rule) == ("deny", "egress.allow")
    assert p.decide(fetch, {"url": "https://api.example.com/y"}).action == "allow"
    assert p.for_tool("fetch").decisions == {}


def test_a_rule_with_conditions_is_never_remembered_as_a_decision():
    p = loads_policy(POLICY)
    info = ToolInfo("refund", side_effect="write")
    for amount in (5, 500, 5000, 5):
        p.decide(info, {"amount": amount})
    assert not p.for_tool("refund").args_free and p.for_tool("refund").decisions == {}


def test_remembered_decisions_per_name_are_bounded():
    p = loads_policy(NAME_ONLY)
    for i in range(_policy_decide._MEMO_DECISIONS + 10):
        info = ToolInfo("add", side_effect="read", base_url=f"http://h{i}")
        assert p.decide(info).action == "allow"
    assert len(p.for_tool("add").decisions) == _policy_decide._MEMO_DECISIONS


def test_a_tool_whose_metadata_changes_is_judged_on_its_new_metadata():
    """The gate reads a tool's metadata on every call; only an unchanged one reuses its
    ToolInfo (and so the policy's remembered decision)."""
    from tether.guards._policygate import PolicyGate
    from tether.tools import ToolRegistry, tool

    @tool(side_effect="read")
    def lookup(q: str) -> str:
        """Look something up."""
        return q

    registry = ToolRegistry([lookup])
    gate = PolicyGate(registry)
    policy = loads_policy("name: ro\nread_only: true\nrules:\n  - {id: all, tools: '*', "
                          "effect: allow}\n")
    first = gate.tool_info("lookup")
    assert gate.tool_info("lookup") is first
    assert gate.judge(policy, "lookup", {"q": "x"}).action == "allow"
    lookup.side_effect = "write"
    assert gate.tool_info("lookup").side_effect == "write"
    assert gate.judge(policy, "lookup", {"q": "x"}).action == "deny"
    lookup.side_effect = "read"
    lookup.requires_approval = True
    assert gate.judge(policy, "lookup", {"q": "x"}).action == "approve"
    lookup.requires_approval = False
    assert gate.judge(policy, "lookup", {"q": "x"}).action == "allow"
    assert gate.tool_info("missing") == ToolInfo("missing")
