"""`PolicyGate`: the policy decision on one proposed tool call, with what the tool registry says
about the tool (side effect, kind, approval requirements)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.guards.policy import Policy, PolicyDecision, PolicySet, ToolInfo

if TYPE_CHECKING:
    from tether.tools import Tool, ToolRegistry


class PolicyGate:
    def __init__(self, tools: ToolRegistry | None = None) -> None:
        self.tools = tools

    def tool_info(self, name: str) -> ToolInfo:
        tool: Tool | None = None
        if self.tools is not None:
            try:
                tool = self.tools.get(name)
            except Exception:
                tool = None
        if tool is None:
            return ToolInfo(name=name)
        kind = "openapi" if hasattr(tool, "base_url") else str(getattr(tool, "kind", "python"))
        return ToolInfo(
            name=name,
            side_effect=tool.side_effect,
            kind=kind,
            base_url=getattr(tool, "base_url", None),
            requires_approval=bool(getattr(tool, "requires_approval", False)),
            critical=bool(getattr(tool, "critical", False)),
        )

    def decide(self, policy: Policy | PolicySet | None, name: str, args: Any) -> PolicyDecision:
        """The run's policy on calling `name` with `args`; no policy denies (deny by default)."""
        if policy is None:
            return PolicyDecision("deny", "no-policy", "no policy configured (deny by default)",
                                  name)
        return policy.decide(self.tool_info(name), args)
