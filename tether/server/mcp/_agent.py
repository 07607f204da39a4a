"""The agent every MCP tool call runs as: one governed, journaled `tool:` step.

A call is a Tether run (not a bare function call) so that it is in `TETHER_DB` like any other
effect: the policy decision, an approval wait and the tool's result are journal events, a call
that waits for a human survives a restart of the server, and `tether show RUN` renders it.

The run names its registry by a key in its input; `SERVED` maps keys to the registries this
process serves (`TetherMCPServer` registers its own), and a `module:NAME` key is imported by
any other worker that picks the run up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.runtime import Context
    from tether.tools import ToolRegistry

#: registries of this process, by the key runs carry in their input
SERVED: dict[str, ToolRegistry] = {}

#: the agent reference every tool-call run records
CALL_AGENT = "tether.server.mcp._agent:mcp_tool_call"


def registry_for(key: str) -> ToolRegistry:
    """The registry a run names: one this process serves, else a `module:NAME` import."""
    found = SERVED.get(key)
    if found is not None:
        return found
    if ":" not in key:
        raise LookupError(f"MCP tool-call run names registry {key!r}, which this process does "
                          "not serve; run it on the server that created it")
    from tether.tools import ToolRegistry, tools_from_module

    registry = ToolRegistry(tools_from_module(key))
    SERVED[key] = registry
    return registry


async def mcp_tool_call(ctx: Context, call: dict[str, Any]) -> dict[str, Any]:
    """Call `call["tool"]` with `call["arguments"]`: through the run's guards when it has
    some (policy, approvals, budgets; a refusal is the step's own answer), else directly.
    Returns the `ToolResult` as JSON, failures included: the MCP client reads them."""
    registry = registry_for(str(call["registry"]))
    name = str(call["tool"])
    arguments = call.get("arguments") or {}
    guards = ctx.guards
    if guards is not None:
        result = await guards.tool(ctx, name, arguments, registry)
    else:
        result = await ctx.tool(registry, name, arguments)
    answer: dict[str, Any] = result.model_dump(mode="json")  # a new dict already
    return answer
