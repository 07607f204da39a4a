"""The tools layer's CPU per call, in-process, no runtime (issue 16).

    .venv/bin/python benchmarks/bench_tool_call.py [--calls 2000] [--rounds 7] [--out FILE]

Writes `benchmarks/results/tool_call.md` (or `--out`).

`tether mcp serve` runs every MCP `tools/call` through the guards' policy gateway and the
runtime's `ctx.tool`; this isolates what the tools layer itself costs on one such call, for
the trivial tools of the MCP benchmark: `add(a: int, b: int)` sync (run on a worker thread, as
the SDK's server runs sync tools) and async. Scenarios, each `--calls` calls in one event loop:
- `run`: `await tool.run({"a": i, "b": 1})` (validation, the call, the `ToolResult`);
- `governed`: what the gateway and the runtime do with the tools layer on a governed call:
  validate the proposal, validate again (the gateway's stability check), the runtime's check,
  `run`, and the result as the journal's JSON (`model_dump(mode="json")`). Where the tools
  layer has `Tool.validated`, the gateway's and runtime's calls use it (the seam of issue 16)
  and hand the tool the validated arguments, as they would once they adopt it;
- `SDK Tool.run`: the same functions run by the official MCP SDK's server code (`mcp` package,
  `mcp.server.mcpserver`), in-process: validation and the call, as `run` measures for Tether;
- parts: one `validate`, one `ToolResult` + `model_dump`, `to_json_value`, the bound on a call
  (`asyncio.wait_for`, `asyncio.timeout`, the tools layer's `bounded`), and the sync hand-off
  (`asyncio.to_thread`, `loop.run_in_executor` with a context copy, the tools layer's
  `in_thread`).

Figure: process CPU (`time.process_time_ns`, all threads: a sync tool's worker thread counts)
per call, best of `--rounds` rounds, scenarios interleaved within each round (the machine is
shared; CPU time is what a loaded machine does not inflate much, wall time would).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tether.tools import Tool, ToolRegistry, ToolResult  # noqa: E402
from tether.tools._base import to_json_value  # noqa: E402

TOOLS = ToolRegistry()


@TOOLS.tool(side_effect="read", idempotent=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@TOOLS.tool(name="add_async", side_effect="read", idempotent=True)
async def add_async(a: int, b: int) -> int:
    """Add two integers, asynchronously."""
    return a + b


Scenario = Callable[[int], Awaitable[Any]]


def _gate(tool: Tool) -> Callable[[Any], Any]:
    """The tools layer's validating call the gateway and the runtime make (the seam if any)."""
    return getattr(tool, "validated", tool.validate)


def scenarios(tool: Tool) -> dict[str, Scenario]:
    check = _gate(tool)

    async def run(i: int) -> Any:
        return await tool.run({"a": i, "b": 1})

    async def governed(i: int) -> Any:
        args = check({"a": i, "b": 1})   # PolicyGate.prepare: validate
        again = check(args)              # ... and the stability check
        if again != args:
            raise AssertionError("unstable validation")
        tool.validate(args)              # tool_effect: the runtime's check
        result = await tool.run(args)    # the step's function
        return result.model_dump(mode="json")  # what the step journals

    async def validate(i: int) -> Any:
        return tool.validate({"a": i, "b": 1})

    return {"run": run, "governed": governed, "validate": validate}


async def _noop() -> None:
    return None


def part_scenarios() -> dict[str, Scenario]:
    def plain_add(a: int, b: int) -> int:
        return a + b

    async def result(i: int) -> Any:
        return ToolResult(tool="add", ok=True, output=i).model_dump(mode="json")

    async def json_value(i: int) -> Any:
        return to_json_value("add", i)

    async def to_thread(i: int) -> Any:
        return await asyncio.to_thread(plain_add, i, 1)

    async def in_executor(i: int) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(None, ctx.run, functools.partial(plain_add, i, 1))

    async def own_threads(i: int) -> Any:
        from tether.tools._threads import in_thread

        return await in_thread(plain_add, i, 1)

    async def timeout_ctx(i: int) -> Any:
        async with asyncio.timeout(30.0):
            return await _noop()

    async def own_bound(i: int) -> Any:
        from tether.tools._deadline import bounded

        return await bounded(_noop(), 30.0)

    async def wait_for(i: int) -> Any:
        return await asyncio.wait_for(_noop(), 30.0)

    return {"ToolResult+dump": result, "to_json_value": json_value,
            "asyncio.to_thread": to_thread, "run_in_executor+ctx": in_executor,
            **({"tools in_thread": own_threads} if _has("_threads") else {}),
            "asyncio.timeout": timeout_ctx, "asyncio.wait_for": wait_for,
            **({"tools bounded": own_bound} if _has("_deadline") else {})}


def _has(module: str) -> bool:
    """Whether the tools layer has `module` (A/B runs use older checkouts too)."""
    import importlib.util

    return importlib.util.find_spec(f"tether.tools.{module}") is not None


async def _round(fn: Scenario, calls: int) -> float:
    """Process CPU µs per call over `calls` calls."""
    for i in range(20):  # warm (thread pool started, caches filled)
        await fn(i)
    start = time.process_time_ns()
    for i in range(calls):
        await fn(i)
    return (time.process_time_ns() - start) / calls / 1000


async def measure(table: dict[str, Scenario], calls: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in table.items():  # interleaved: every scenario sees the same load
            figure = await _round(fn, calls)
            best[name] = min(best.get(name, figure), figure)
    return best


def sdk_scenarios() -> dict[str, Scenario]:
    """The same functions as the official MCP SDK's server runs them (`mcp.server.mcpserver`'s
    `Tool.run`: its pydantic argument model, then the function; a sync one on anyio's worker
    thread), in-process: what `tether mcp serve` competes with, minus the protocol."""
    try:
        from mcp.server.mcpserver.tools.base import Tool as SdkTool
    except ImportError:  # the `mcp` extra is not installed
        return {}
    table: dict[str, Scenario] = {}
    for fn, kind in ((add.fn, "sync"), (add_async.fn, "async")):
        sdk_tool = SdkTool.from_function(fn)

        async def run(i: int, sdk_tool: Any = sdk_tool) -> Any:
            return await sdk_tool.run({"a": i, "b": 1}, context=None)

        table[f"SDK Tool.run ({kind})"] = run
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/tool_call.md")
    args = parser.parse_args()

    load_before = os.getloadavg()
    table: dict[str, Scenario] = {}
    for tool in (TOOLS.get("add"), TOOLS.get("add_async")):
        kind = "sync" if tool.name == "add" else "async"
        for name, fn in scenarios(tool).items():
            table[f"{name} ({kind})"] = fn
    table.update(sdk_scenarios())
    for name, fn in part_scenarios().items():
        table[f"part: {name}"] = fn
    best = asyncio.run(measure(table, args.calls, args.rounds))
    load_after = os.getloadavg()

    seam = "yes" if hasattr(TOOLS.get("add"), "validated") else "no"
    lines = [
        "# The tools layer's CPU per call (issue 16)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_tool_call.py --calls {args.calls} "
        f"--rounds {args.rounds}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after. `Tool.validated` seam present: {seam}.",
        "",
        "Process CPU per call (all threads), best of the rounds, scenarios interleaved:",
        "",
        "| scenario | CPU µs per call |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:.1f} |" for name, value in best.items()]
    ratios = [f"- {kind}: Tether `run` {best[f'run ({kind})']:.1f} µs vs the SDK's "
              f"{best[f'SDK Tool.run ({kind})']:.1f} µs: "
              f"{best[f'run ({kind})'] / best[f'SDK Tool.run ({kind})']:.2f}x"
              for kind in ("sync", "async") if f"SDK Tool.run ({kind})" in best]
    if ratios:
        lines += ["", "Tether's tool call against the MCP SDK's, same function, same run:", "",
                  *ratios]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
