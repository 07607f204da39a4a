"""What a user of the embedded local model waits for: one real ReAct run, every model call timed.

`bench_models.py` measures short tool-choice prompts after an untimed warm-up; a ReAct step sends
the whole prompt (system, tools, a worked example, the goal, the turns so far: ~800 tokens and
growing), and the first call also loads the weights. This runs the demo's countries task once,
journaled like any run, and records for each model call: prompt and output tokens, wall time and
the process's CPU time (all llama.cpp threads). The 1-minute load average is recorded before and
after: on a shared machine both times grow with the load, and are only comparable at a similar
load.

    .venv/bin/python benchmarks/bench_react_step.py [--small] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether import Tether
from tether.agents import react
from tether.demo._app import DEFAULT_GOAL, EXAMPLE
from tether.demo.tools import demo_tools
from tether.models import DEFAULT_WEIGHTS, SMALL_WEIGHTS, LocalModel, Model, ModelResponse
from tether.models.wrappers import WrapperModel

ROOT = Path(__file__).resolve().parents[1]


class TimedModel(WrapperModel):
    """Times each call the wrapped model answers (wall and process CPU)."""

    def __init__(self, wrapped: Model) -> None:
        super().__init__(wrapped)
        self.timings: list[dict[str, Any]] = []

    async def complete(self, messages: Sequence[Any], **kwargs: Any) -> ModelResponse:
        wall, cpu = time.perf_counter(), time.process_time()
        response = await self.wrapped.complete(messages, **kwargs)
        self.timings.append({
            "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "tool_calls": [c.name for c in response.tool_calls]})
        return response


# A worker imports this file again under another module name to run `agent`; what the script
# set up lives in the script's own module, `__main__`.
STATE: dict[str, Any] = {}


async def agent(ctx: Any, goal: str) -> dict[str, Any]:
    state = sys.modules["__main__"].STATE
    return await react(ctx, goal, model=state["model"], tools=demo_tools(),
                       examples=[EXAMPLE], max_steps=6)


def load() -> float:
    return os.getloadavg()[0]


async def measure(small: bool) -> dict[str, Any]:
    spec = SMALL_WEIGHTS if small else DEFAULT_WEIGHTS
    load_before = load()
    started = time.perf_counter()
    model = TimedModel(LocalModel(spec, n_ctx=4096, max_tokens=256))
    STATE["model"] = model
    with tempfile.TemporaryDirectory() as tmp:
        tether = Tether(os.path.join(tmp, "bench.db"))
        record = await tether.run(agent, DEFAULT_GOAL)
        tether.close()
    total = time.perf_counter() - started
    await model.aclose()
    return {"model": spec.filename, "status": record.status, "error": record.error,
            "answer": (record.result or {}).get("answer") if record.result else None,
            "calls": model.timings, "total_s": total, "load_before": load_before,
            "load_after": load()}


def report(result: dict[str, Any], command: str) -> str:
    rows = ["| call | prompt tokens | output tokens | wall | CPU | proposed |",
            "|---|---|---|---|---|---|"]
    for i, c in enumerate(result["calls"], 1):
        what = ", ".join(c["tool_calls"]) or "answer"
        first = " (loads the weights)" if i == 1 else ""
        rows.append(f"| {i}{first} | {c['input_tokens']} | {c['output_tokens']} | "
                    f"{c['wall_s']:.1f} s | {c['cpu_s']:.1f} s | {what} |")
    later = [c["wall_s"] for c in result["calls"][1:]]
    spread = f"{min(later):.1f} to {max(later):.1f} s" if later else "n/a"
    return "\n".join([
        "## A ReAct run on the embedded model, call by call",
        "",
        f"Model `{result['model']}`, the demo's countries task (`{DEFAULT_GOAL}`), one worked "
        f"example, native tool calls, temperature 0. Run {result['status']} in "
        f"{result['total_s']:.1f} s; answer: {result['answer']!r}.",
        "",
        *rows,
        "",
        f"Steps after the first: {spread} wall each. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; 1-minute load average "
        f"{result['load_before']:.1f} before and {result['load_after']:.1f} after — "
        f"{_load_words(result['load_before'], result['load_after'])}",
        "",
        "Reproduce:",
        "",
        "```",
        command,
        "```",
        "",
    ])


def _load_words(before: float, after: float) -> str:
    """Say whose figures these are: a quiet machine's, or one shared with other work."""
    if max(before, after) < (os.cpu_count() or 1):
        return ("fewer runnable processes than cores, so these are a quiet machine's times (the "
                "run's own llama.cpp threads make most of the load).")
    return ("the machine was shared with other work (more runnable processes than cores), so "
            "these are a loaded machine's times; CPU time grows under load too (llama.cpp's "
            "threads spin while they wait for each other), so neither is a quiet machine's "
            "figure.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the 0.5B model instead of 1.5B")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/react_step.md"))
    args = parser.parse_args()
    result = asyncio.run(measure(args.small))
    command = ".venv/bin/python benchmarks/bench_react_step.py" + (" --small" if args.small
                                                                   else "")
    text = report(result, command)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
