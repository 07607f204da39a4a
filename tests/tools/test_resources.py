"""A tool's `resources` (what one call needs from the machine): checked where the tool is
written, carried to the step that runs it, absent for ordinary tools."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.runtime import Context
from tether.tools import ToolDefinitionError, ToolRegistry, tool

TOOLS = ToolRegistry()


@TOOLS.tool(resources={"num_cpus": 2, "num_gpus": 0.5, "memory": 2 << 30,
                       "custom": {"accelerator_type:A100": 1}})
def crunch(n: int) -> int:
    """Squares n, heavily."""
    return n * n


@TOOLS.tool
def light(n: int) -> int:
    """Adds one."""
    return n + 1


async def calls_both(ctx: Context, n: int) -> Any:
    heavy = await ctx.tool(TOOLS, "crunch", {"n": n})
    plain = await ctx.tool(TOOLS, "light", {"n": n})
    return [heavy.output, plain.output]


def _noop(n: int) -> int:
    return n


@pytest.mark.parametrize(("resources", "named"), [
    ({"cpus": 2}, "unknown resources key 'cpus'"),
    ({"num_cpus": -1}, "resources['num_cpus'] must be a number >= 0"),
    ({"num_gpus": "1"}, "resources['num_gpus'] must be a number >= 0"),
    ({"num_cpus": True}, "resources['num_cpus'] must be a number >= 0"),
    ({"num_cpus": float("inf")}, "resources['num_cpus'] must be a number >= 0"),
    ({"memory": 1.5e9}, "resources['memory'] must be whole bytes > 0"),
    ({"memory": 0}, "resources['memory'] must be whole bytes > 0"),
    ({"custom": {"": 1}}, "resources['custom'] must map cluster resource names"),
    ({"custom": {"tpu": -2}}, "resources['custom'] must map cluster resource names"),
    ({"custom": 3}, "resources['custom'] must map cluster resource names"),
    ([("num_cpus", 2)], "resources must be a dict"),
])
def test_bad_resources_are_refused_at_decoration_naming_tool_and_key(
        resources: Any, named: str) -> None:
    with pytest.raises(ToolDefinitionError) as exc:
        tool(name="bad_heavy", resources=resources)(_noop)
    assert "tool 'bad_heavy'" in str(exc.value)
    assert named in str(exc.value)


def test_declared_resources_are_kept_as_a_private_copy() -> None:
    asked = {"num_cpus": 1, "custom": {"fpga": 1}}
    t = tool(name="copied", resources=asked)(_noop)
    asked["num_cpus"] = 8
    asked["custom"]["fpga"] = 4  # type: ignore[index]
    assert t.resources == {"num_cpus": 1, "custom": {"fpga": 1}}
    assert tool(name="plain")(_noop).resources is None


def test_a_heavy_tool_pickles_for_a_remote_worker() -> None:
    """Ray ships the tool to its workers; a module-level tool must survive the trip."""
    again = pickle.loads(pickle.dumps(TOOLS.get("crunch")))
    assert again.resources == TOOLS.get("crunch").resources
    assert again.fn(3) == 9


async def test_the_step_of_a_heavy_tool_declares_its_resources(tmp_path: Path) -> None:
    """Without an executor the call runs in the worker, but the journal records what it asked
    for; a tool without resources records none, exactly as before."""
    tether = Tether(str(tmp_path / "t.db"))
    run = await tether.run(calls_both, 4)
    assert (run.status, run.result) == ("succeeded", [16, 5]), run.error
    starts = {e.name: e.data for e in tether.events(run.id) if e.kind == "step_started"}
    assert starts["tool:crunch"]["resources"] == {
        "num_cpus": 2, "num_gpus": 0.5, "memory": 2 << 30,
        "custom": {"accelerator_type:A100": 1}}
    assert "executor" not in starts["tool:crunch"]
    assert "resources" not in starts["tool:light"]
    tether.close()
