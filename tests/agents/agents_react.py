"""Module-level agents for the ReAct tests (runs name their agent as module:function).

Each test sets `SETUP` (model, options) before running; `CALLS` counts live tool executions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tether import Context
from tether.agents import MaxStepsExceeded, react
from tether.tools import ToolRegistry

CALLS: Counter[str] = Counter()
SETUP: dict[str, Any] = {}
EVENTS: list[Any] = []

FIGURES = {"norway": {"population": 5_500_000, "area_km2": 385_000},
           "japan": {"population": 124_000_000, "area_km2": 378_000}}

registry = ToolRegistry()


@registry.tool
def lookup(country: str) -> dict[str, int]:
    """Population and area of a country."""
    CALLS["lookup"] += 1
    key = country.strip().lower()
    if key not in FIGURES:
        raise KeyError(f"no figures for {country!r}; known: {', '.join(sorted(FIGURES))}")
    return FIGURES[key]


@registry.tool
def divide(a: float, b: float) -> float:
    """a / b."""
    CALLS["divide"] += 1
    return round(a / b, 2)


def reset() -> None:
    CALLS.clear()
    SETUP.clear()
    EVENTS.clear()


async def react_agent(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(ctx, goal, model=SETUP["model"], tools=registry,
                       on_event=EVENTS.append, **SETUP.get("options", {}))


async def react_catching(ctx: Context, goal: str) -> dict[str, Any]:
    try:
        return await react_agent(ctx, goal)
    except MaxStepsExceeded as e:
        return {"max_steps": e.max_steps, "trajectory": e.trajectory}
