"""``python -m tether.demo``: a durable ReAct agent answers a question with two tools.

It looks figures up in a bundled CSV file and computes with them, printing each thought, tool
call and observation as it happens, then the run's journal as a timeline. Everything goes
through a real Tether run on a SQLite file, so the same run can be inspected afterwards with
``tether show <run id> --db <file>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tether import Context, Tether
from tether.agents import ExampleStep, ReActEvent, ReActExample, react
from tether.demo.tools import demo_tools
from tether.models import Model

DEFAULT_GOAL = (
    "What is the population density of Japan, in people per square kilometre? "
    "Use the data file and a calculation."
)

EXAMPLE = ReActExample(
    goal="How many times larger than Kenya is Canada, by area?",
    steps=[
        ExampleStep(
            thought="I need the areas of Canada and Kenya from the data file.",
            calls=[("lookup_country", {"country": "Canada"}),
                   ("lookup_country", {"country": "Kenya"})],
            observations=[
                '{"country":"Canada","capital":"Ottawa","population":40100000,'
                '"area_km2":9984670,"gdp_usd_billion":2140}',
                '{"country":"Kenya","capital":"Nairobi","population":55100000,'
                '"area_km2":580367,"gdp_usd_billion":108}',
            ],
        ),
        ExampleStep(
            thought="Divide Canada's area by Kenya's area.",
            calls=[("calculate", {"expression": "9984670 / 580367"})],
            observations=["17.2041"],
        ),
    ],
    answer="Canada is about 17.2 times larger than Kenya by area "
           "(9,984,670 km2 vs 580,367 km2).",
)

#: set by main() before the run starts; the agent is module-level so the runtime can name it
_STATE: dict[str, Any] = {}


async def demo_agent(ctx: Context, goal: str) -> dict[str, Any]:
    return await react(
        ctx,
        goal,
        model=_STATE["model"],
        tools=demo_tools(),
        max_steps=_STATE.get("max_steps", 6),
        mode=_STATE.get("mode", "auto"),
        examples=[EXAMPLE],
        on_event=_STATE.get("on_event"),
        model_params=_STATE.get("model_params", {"temperature": 0.0}),
    )


class DemoUsageError(ValueError):
    pass


def _available(weights: Any) -> bool:
    """Whether the weights are on disk (cache, explicit path or part packages), without hashing.

    `make setup` installs only the small model; the larger default comes with
    `make models-large`. Without it the demo still runs, on the small model.
    """
    import os

    from tether.models.errors import WeightsError
    from tether.models.weights import cache_dir

    if os.environ.get("TETHER_MODEL_PATH") or (cache_dir() / weights.filename).is_file():
        return True
    try:
        weights.part_files()
    except WeightsError:
        return False
    return True


def build_model(spec: str, base_url: str | None) -> Model:
    """``local`` (the embedded model: Qwen2.5-Coder-1.5B if installed, else the 0.5B one),
    ``local:small`` (0.5B), or ``openai:NAME`` (+ ``--base-url``)."""
    if spec in ("local", "local:small"):
        from tether.models import DEFAULT_WEIGHTS, SMALL_WEIGHTS, LocalModel

        weights = SMALL_WEIGHTS
        if spec == "local" and _available(DEFAULT_WEIGHTS):
            weights = DEFAULT_WEIGHTS
        return LocalModel(weights, n_ctx=4096, max_tokens=256)
    if spec.startswith("openai:") and spec != "openai:":
        from tether.models import OpenAIChatModel

        name = spec.split(":", 1)[1]
        return OpenAIChatModel(name, base_url=base_url) if base_url else OpenAIChatModel(name)
    raise DemoUsageError(
        f"unknown --model {spec!r}: use 'local' (embedded model), 'local:small', or "
        "'openai:NAME' with --base-url for any OpenAI-compatible server"
    )


class Progress:
    """Prints ReAct events as they happen."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def __call__(self, event: ReActEvent) -> None:
        t = f"[dim]{time.monotonic() - self.started:6.1f}s[/dim]"
        c = self.console
        if event.kind == "thought":
            c.print(f"{t} [bold]step {event.step}[/bold] [italic]{escape(event.text)}[/italic]")
        elif event.kind == "tool_call":
            args = ", ".join(f"{k}={v!r}" for k, v in (event.arguments or {}).items())
            c.print(f"{t} [bold]step {event.step}[/bold] [cyan]→ {event.tool}({escape(args)})"
                    "[/cyan]")
        elif event.kind == "observation":
            style = "green" if event.ok else "red"
            c.print(f"{t}        [{style}]← {escape(_short(event.text, 150))}[/{style}]")
        elif event.kind == "answer":
            c.print(f"{t} [bold]step {event.step}[/bold] [magenta]final answer[/magenta]")


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _detail(kind: str, name: str | None, data: Any) -> str:
    if not isinstance(data, dict):
        return "" if data is None else _short(json.dumps(data))
    if kind == "run_submitted":
        return f"agent {data.get('agent')}"
    if kind == "run_started":
        return f"worker {data.get('worker')}"
    if kind == "step_started":
        meta = data.get("meta") or {}
        if meta.get("kind") == "tool":
            return f"{meta.get('side_effect')}, idempotent={meta.get('idempotent')}"
        return ""
    if kind == "step_completed" and "response" in data:
        resp = data["response"]
        usage = data.get("usage") or {}
        tokens = f"{usage.get('input_tokens', 0)}→{usage.get('output_tokens', 0)} tok"
        if resp.get("tool_calls"):
            calls = ", ".join(c["name"] for c in resp["tool_calls"])
            return f"{tokens}; calls {calls}"
        return f"{tokens}; {_short(resp.get('text') or '', 50)}"
    if kind == "step_completed" and "ok" in data:
        if data.get("ok"):
            return "ok: " + _short(json.dumps(data.get("output")), 60)
        err = data.get("error") or {}
        return f"{err.get('type')}: " + _short(err.get("message", ""), 55)
    if kind == "step_failed":
        return f"{data.get('type')}: {_short(data.get('message', ''), 55)}"
    return _short(json.dumps(data), 60)


def timeline(tether: Tether, run_id: str) -> Table:
    events = tether.events(run_id)
    t0 = events[0].ts if events else 0.0
    table = Table(title=f"journal of run {run_id}", show_lines=False)
    table.add_column("seq", justify="right", no_wrap=True, min_width=3)
    table.add_column("+ms", justify="right", no_wrap=True, min_width=6)
    table.add_column("event", no_wrap=True, min_width=14)
    table.add_column("name", no_wrap=True, min_width=16, max_width=28, overflow="ellipsis")
    table.add_column("detail", no_wrap=True, max_width=62, overflow="ellipsis")
    for e in events:
        table.add_row(str(e.seq), f"{(e.ts - t0) * 1000:.0f}", e.kind, escape(e.name or ""),
                      escape(_detail(e.kind, e.name, e.data)))
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tether.demo",
        description="A durable ReAct agent that looks up figures and computes with them.",
    )
    p.add_argument("--model", default="local",
                   help="local (embedded model, default), local:small, or openai:NAME")
    p.add_argument("--base-url", default=None,
                   help="base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--goal", default=DEFAULT_GOAL, help="the question to answer")
    p.add_argument("--max-steps", type=int, default=6, help="model replies before giving up")
    p.add_argument("--mode", choices=("auto", "native", "json"), default="auto",
                   help="prompt protocol: native tool calls or schema-constrained JSON")
    p.add_argument("--db", default=None, help="SQLite file for the journal (default: temporary)")
    return p


async def _run(args: argparse.Namespace, console: Console, db: str) -> int:
    try:
        model = build_model(args.model, args.base_url)
    except DemoUsageError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        return 2
    _STATE.update(model=model, max_steps=args.max_steps, mode=args.mode,
                  on_event=Progress(console))
    console.print(Panel.fit(
        f"[bold]goal[/bold]  {escape(args.goal)}\n[bold]model[/bold] {escape(model.name)}\n"
        f"[bold]tools[/bold] lookup_country, calculate\n[bold]db[/bold]    {escape(db)}",
        title="Tether demo: ReAct with two tools"))
    tether = Tether(db)
    try:
        with console.status("running the agent (the local model may take a while to load)…"):
            record = await tether.run(demo_agent, args.goal)
        console.print()
        if record.status == "succeeded":
            result = record.result
            console.print(Panel(escape(str(result["answer"])), title="answer",
                                subtitle=f"{result['steps']} steps, {result['tool_calls']} tool "
                                         "calls", border_style="green"))
        else:
            console.print(Panel(escape(str(record.error or record.reason)),
                                title=f"run {record.status}", border_style="red"))
        console.print(timeline(tether, record.id))
        console.print(f"[dim]inspect later: tether show {record.id} --db {escape(db)}[/dim]")
        return 0 if record.status == "succeeded" else 1
    finally:
        tether.close()
        await model.aclose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    if args.db:
        return asyncio.run(_run(args, console, args.db))
    with tempfile.TemporaryDirectory(prefix="tether-demo-") as tmp:
        return asyncio.run(_run(args, console, str(Path(tmp) / "demo.db")))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
