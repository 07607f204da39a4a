"""The policy gateway: deny by default, decided by rules read from a YAML file.

Four parts, one module each, all public from here:
- `_policy_rules`: what a policy is made of (`ToolInfo`, `Rule`, `Condition`) and what it
  decides (`PolicyDecision`, with a `TraceEntry` per rule it looked at);
- `_policy_decide`: `Policy` and `PolicySet`, the decision and its precedence (honeypots,
  read-only, egress, deny > approve > allow, deny by default), and `ToolRules`, what of a
  policy applies to one tool name (worked out once per name: `Policy.for_tool`);
- `_policy_load`: `loads_policy` / `load_policy`, the YAML reader that names the line of every
  error;
- `_policy_lint`: `check_tools`, a policy against the tool names a registry serves (globs that
  match no tool, tools no rule names).
"""

from __future__ import annotations

from tether.guards._policy_decide import Policy as Policy
from tether.guards._policy_decide import PolicySet as PolicySet
from tether.guards._policy_decide import ToolRules as ToolRules
from tether.guards._policy_lint import ToolsCheck as ToolsCheck
from tether.guards._policy_lint import UnmatchedGlob as UnmatchedGlob
from tether.guards._policy_lint import check_tools as check_tools
from tether.guards._policy_load import load_policy as load_policy
from tether.guards._policy_load import loads_policy as loads_policy
from tether.guards._policy_rules import Action as Action
from tether.guards._policy_rules import Condition as Condition
from tether.guards._policy_rules import PolicyDecision as PolicyDecision
from tether.guards._policy_rules import Rule as Rule
from tether.guards._policy_rules import SideEffect as SideEffect
from tether.guards._policy_rules import ToolInfo as ToolInfo
from tether.guards._policy_rules import TraceEntry as TraceEntry

__all__ = [
    "Action",
    "Condition",
    "Policy",
    "PolicyDecision",
    "PolicySet",
    "Rule",
    "SideEffect",
    "ToolInfo",
    "ToolRules",
    "ToolsCheck",
    "TraceEntry",
    "UnmatchedGlob",
    "check_tools",
    "load_policy",
    "loads_policy",
]
