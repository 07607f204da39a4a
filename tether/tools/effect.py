"""What a tool tells the runtime's tool effect: the step's name, its time bound and its metadata.

``ctx.tool(...)`` journals each call as one step (``tether.runtime.effects.tool``); the facts
about the tool it needs are decided here, by the tool layer, which imports nothing of the runtime.
Guards read the same ``effect_meta`` when they answer a step themselves, so both describe a call
identically.
"""

from __future__ import annotations

from typing import Any

from tether.store.vocabulary import TOOL_STEP
from tether.tools._base import Tool

STEP_PREFIX = TOOL_STEP


def step_timeout(tool: Tool) -> float | None:
    """Outer bound for the whole step: every attempt's timeout plus the retry back-off."""
    if tool.timeout is None:
        return None
    backoff = sum(min(0.05 * 2**i, 2.0) for i in range(1, tool.retries + 1))
    return tool.timeout * (tool.retries + 1) + backoff + 1.0


def effect_meta(tool: Tool) -> dict[str, Any]:
    """What interceptors (policy, budgets, tracing) need to know about the call."""
    return {
        "kind": "tool",
        "tool": tool.name,
        "version": tool.version,
        "side_effect": tool.side_effect,
        "idempotent": tool.idempotent,
        "requires_approval": tool.requires_approval,
        "critical": tool.critical,
    }
