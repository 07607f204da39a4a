"""Which tools a policy lets a client see.

A tool the policy denies must not be listed (a client, or the model behind it, should not even
learn it exists); a call to it by name is still refused by the guards, journaled. Rules can
depend on arguments, so listing asks whether *some* call could be allowed: the tool is hidden
when the policy denies it whatever the arguments — read-only mode and a write tool, a `deny`
rule without conditions, or no `allow`/`approve` rule naming it (deny by default).
"""

from __future__ import annotations

from tether.guards import Policy, PolicySet, ToolInfo


def could_allow(policy: Policy | PolicySet | None, info: ToolInfo, *,
                granted: bool = False) -> bool:
    """`granted`: the operator exposed this tool explicitly (an agent: its own tool calls are
    governed inside its run), so only a `deny` rule naming it hides it."""
    if policy is None:
        return granted
    if isinstance(policy, PolicySet):
        return all(could_allow(p, info, granted=granted) for p in policy.policies)
    if policy.decide(info).action == "honeypot":
        return True  # a honeypot is a bait: it must look real
    if policy.read_only and info.side_effect != "read" and not granted:
        return False
    rules = [r for r in policy.rules if r.matches_tool(info.name)]
    if any(r.effect == "deny" and not r.conditions for r in rules):
        return False
    return granted or any(r.effect in ("allow", "approve") for r in rules)
