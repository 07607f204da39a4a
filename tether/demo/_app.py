"""``python -m tether.demo``: durable ReAct agents, run one after the other.

1. ``countries``: an agent answers a question with two tools — it looks figures up in a bundled
   CSV file and computes with them.
2. ``analysis``: an agent analyses a bundled CSV with pandas over several sandboxed ``python``
   calls; a file the first call writes to ``/workspace`` is read by a later call, each in a fresh
   sandbox (see ``tether/demo/analysis.py``).

Each task prints its thoughts, tool calls and observations as they happen, then the answer and
the run's journal as a timeline. Everything goes through real Tether runs on one SQLite file, so
the runs can be inspected afterwards with ``tether show <run id> --db <file>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import termios
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tether import Context, Tether
from tether.agents import ExampleStep, Governed, ReActExample, react
from tether.cli._safe import SafeConsole
from tether.demo._models import DemoUsageError, build_model
from tether.demo._progress import Progress
from tether.demo.analysis import (
    ANALYSIS_STATE,
    DEFAULT_ANALYSIS_GOAL,
    SALES_NAME,
    analysis_agent,
    code_calls,
    persistence,
)
from tether.demo.governance import (
    APPROVER,
    POLICY,
    REPORTS,
    RUN_BUDGET,
    DemoGovernance,
    publishing_tools,
)
from tether.demo.tools import demo_tools
from tether.guards import inbox, sign_decision
from tether.models import Model
from tether.observe import timeline_table

TASKS = ("countries", "analysis")

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
    """ReAct toward the goal, then publish the answer: an action the policy gives a person to
    approve (the run waits for the decision as a row in the database, no process held)."""
    result = await react(
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
    published = await Governed(ctx).tool(publishing_tools(), "publish_report",
                                         {"title": goal, "text": result["answer"]})
    outcome = published.output if published.ok else (
        f"not published: {published.error.message if published.error else 'refused'}")
    return {**result, "published": outcome}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tether.demo",
        description="Durable ReAct agents: one looks up figures and computes with them, one "
                    "analyses a CSV with pandas in sandboxed python calls.",
    )
    p.add_argument("--task", choices=(*TASKS, "all"), default="all",
                   help="which task to run: countries (two tools), analysis (pandas in the "
                        "sandbox), or all (default: both, one after the other)")
    p.add_argument("--model", default="local",
                   help="local (embedded model, default), local:small, or openai:NAME")
    p.add_argument("--base-url", default=None,
                   help="base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--goal", default=DEFAULT_GOAL, help="the countries task's question")
    p.add_argument("--analysis-goal", default=DEFAULT_ANALYSIS_GOAL,
                   help=f"the analysis task's question (about /workspace/{SALES_NAME})")
    p.add_argument("--max-steps", type=int, default=6,
                   help="model replies per task before giving up")
    p.add_argument("--mode", choices=("auto", "native", "json"), default="auto",
                   help="prompt protocol: native tool calls or schema-constrained JSON")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (default 0: greedy, reproducible)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (local model, OpenAI)")
    p.add_argument("--backend", default=None,
                   help="sandbox backend for the analysis task: bwrap (default) or gvisor")
    p.add_argument("--db", default=None,
                   help="SQLite file for the journal (default: a new one in a temporary folder, "
                        "kept after the demo)")
    p.add_argument("--yes", action="store_true",
                   help="approve the action that needs a person without asking (for scripts "
                        "and CI); without it the demo asks in the terminal, and denies when "
                        "there is no terminal to ask in")
    p.add_argument("--serve", action="store_true",
                   help="serve the web UI of `tether serve` on the demo's database, print its "
                        "URL and a login key, and keep serving after the demo (Ctrl-C stops)")
    p.add_argument("--port", type=int, default=8400, help="the web UI's port (with --serve)")
    return p


def _params(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": args.temperature, **extra}
    if args.seed is not None:
        params["seed"] = args.seed
    return params


async def _countries(args: argparse.Namespace, console: Console, tether: Tether, model: Model,
                     db: str, gov: DemoGovernance) -> bool:
    _STATE.update(model=model, max_steps=args.max_steps, mode=args.mode,
                  on_event=Progress(console), model_params=_params(args))
    console.print(Panel.fit(
        f"[bold]goal[/bold]  {escape(args.goal)}\n[bold]model[/bold] {escape(model.name)}\n"
        f"[bold]tools[/bold] lookup_country, calculate; then publish_report (needs approval)\n"
        f"[bold]db[/bold]    {escape(db)}",
        title="Tether demo: countries — ReAct with two tools"))
    with console.status("running the agent (the local model may take a while to load)…"):
        record = await tether.run(demo_agent, args.goal)
    if record.status == "waiting" and await _decide(args, console, tether, gov, record.id):
        with console.status("resuming the run from its journal…"):
            record = await tether.drive(record.id)
    ok = _report(console, tether, record, db)
    if ok:
        console.print(f"[bold]published[/bold]: {escape(str(record.result.get('published')))}")
    return ok


async def _decide(args: argparse.Namespace, console: Console, tether: Tether,
                  gov: DemoGovernance, run_id: str) -> bool:
    """Show the pending approval and decide it as the registered approver (signed)."""
    pending = [p for p in inbox.list_pending(tether.store, gov.approvers)
               if p.request.run_id == run_id]
    if not pending:
        return False
    req = pending[0].request
    console.print(Panel.fit(
        f"[bold]tool[/bold]   {escape(req.tool)}\n[bold]args[/bold]   "
        f"{escape(json.dumps(req.args, ensure_ascii=False)[:300])}\n"
        f"[bold]rule[/bold]   {escape(req.rule)} ({escape(req.reason)})\n"
        f"[bold]id[/bold]     {escape(req.id)}  (outside the demo, whose approver key lives in "
        f"this process only: tether approve {escape(req.id)} --key KEY --keys approvers.yaml)",
        title="approval needed — the run waits as a row, no process is held",
        border_style="yellow"))
    if args.yes:
        verdict, why = "approve", "approved with --yes"
    elif sys.stdin.isatty():
        answer = ask(console, f"approve as [bold]{APPROVER}[/bold]? [y/N] ").strip().lower()
        verdict, why = ("approve", "approved in the terminal") if answer in ("y", "yes") else (
            "deny", "denied in the terminal")
    else:
        verdict, why = "deny", "no terminal to ask in and no --yes: denied"
    decision = sign_decision(gov.private_key, req.id, verdict, APPROVER,  # type: ignore[arg-type]
                             req.digest, why)
    status = inbox.decide(tether, decision, gov.approvers)
    style = "green" if status == "approved" else "red"
    console.print(f"[{style}]{escape(why)}[/{style}] (signed by {APPROVER}; status {status})")
    return True


async def _analysis(args: argparse.Namespace, console: Console, tether: Tether, model: Model,
                    db: str, gov: DemoGovernance) -> bool:
    progress = Progress(console)
    ANALYSIS_STATE.update(model=model, max_steps=args.max_steps, mode=args.mode,
                          backend=args.backend, on_event=progress, on_staged=progress.staged,
                          on_retry=progress.retry,
                          model_params=_params(args, max_tokens=512))
    console.print(Panel.fit(
        f"[bold]goal[/bold]  {escape(args.analysis_goal)}\n"
        f"[bold]model[/bold] {escape(model.name)}\n"
        f"[bold]tools[/bold] python (a fresh {escape(args.backend or 'default')} sandbox per "
        "call; /workspace persists as artifacts)\n"
        f"[bold]data[/bold]  tether/demo/data/{SALES_NAME} → /workspace/{SALES_NAME}\n"
        f"[bold]db[/bold]    {escape(db)}",
        title="Tether demo: analysis — ReAct with a sandboxed python tool", width=110))
    with console.status("running the agent (each python call runs in a fresh sandbox)…"):
        record = await tether.run(analysis_agent, args.analysis_goal)
    ok = _report(console, tether, record, db)
    console.print(_workspace_table(tether, record.id))
    if ok and not record.result.get("grounded", True):
        console.print("[red]the answer is not backed by figures a python call printed[/red]")
        return False
    return ok


def _workspace_table(tether: Tether, run_id: str) -> Table:
    """Which exec wrote each workspace file and which later execs (fresh sandboxes) read it."""
    calls = code_calls(tether.events(run_id))
    label = [f"{'setup ' if c['step'] == 'sandbox.exec' else ''}{c['step']} (seq {c['seq']})"
             for c in calls]
    table = Table(title="the run's /workspace: files persist across fresh sandboxes")
    table.add_column("file", no_wrap=True)
    table.add_column("written by", no_wrap=True)
    table.add_column("read by a later exec", no_wrap=True)
    for path, writer, readers in persistence(calls):
        table.add_row(escape(path), escape(label[writer]),
                      escape(", ".join(label[r] for r in readers) or "—"))
    return table


def _counted(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _report(console: Console, tether: Tether, record: Any, db: str) -> bool:
    console.print()
    if record.status == "succeeded":
        result = record.result
        console.print(Panel(escape(str(result["answer"])), title="answer",
                            subtitle=", ".join(_counted(result[key], what) for key, what in (
                                ("steps", "step"), ("tool_calls", "tool call"))) + (
                                f", {result['attempts']} attempts"
                                if result.get("attempts", 1) > 1 else ""),
                            border_style="green" if result.get("grounded", True) else "red"))
    else:
        console.print(Panel(escape(str(record.error or record.reason)),
                            title=f"run {record.status}", border_style="red"))
    console.print(timeline_table(record, tether.events(record.id)))
    console.print(f"[dim]inspect later: {escape(tether_command())} show {record.id} --db "
                  f"{escape(db)}[/dim]",
                  soft_wrap=True)  # a command to copy: never broken across lines
    return bool(record.status == "succeeded")


def ask(console: Console, prompt: str) -> str:
    """The answer typed after `prompt` was shown. What was typed before (a stray `y` while the
    model worked, minutes earlier) is thrown away first: an approval must answer the request
    on screen."""
    with contextlib.suppress(OSError, termios.error):
        termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
    return console.input(prompt)


def tether_command() -> str:
    """How to call the CLI from the user's shell: `tether` when that is on PATH and the one
    this Python runs, else its full path (after `make demo` the venv is not activated)."""
    own = Path(sys.executable).parent / "tether"
    found = shutil.which("tether")
    if found and Path(found).resolve() == own.resolve():
        return "tether"
    return str(own) if own.exists() else "tether"


async def _run(args: argparse.Namespace, console: Console, db: str) -> int:
    try:
        build_model(args.model, args.base_url)  # check the flag before anything runs
    except DemoUsageError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        return 2
    tasks = TASKS if args.task == "all" else (args.task,)
    gov = DemoGovernance()
    REPORTS["dir"] = Path(db).parent / "reports"
    console.print(Panel(escape(POLICY.rstrip()) + "\n\n[bold]run budget[/bold] " + escape(
        ", ".join(f"{k}={v}" for k, v in RUN_BUDGET.to_json().items())) + "\n[bold]approver"
        f"[/bold] {APPROVER} (Ed25519 key made for this session)",
        title="guards: every model and tool call goes through this policy"))
    tether = Tether(db, guards=gov.guards)
    ok = True
    try:
        for i, task in enumerate(tasks):
            if i:
                console.print()
            # A fresh model per task, so a task behaves the same alone or after the other: a
            # local model reuses its prompt cache across calls, which shifts the numerics.
            model = build_model(args.model, args.base_url)
            try:
                run = _countries if task == "countries" else _analysis
                ok = await run(args, console, tether, model, db, gov) and ok
            finally:
                await model.aclose()
        return 0 if ok else 1
    finally:
        tether.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # what models and tools said reaches the terminal escaped (`SafeConsole`)
    console = SafeConsole(highlight=False, width=None if sys.stdout.isatty() else 120)
    if args.db:
        return _served(args, console, args.db)
    # kept after the demo (it used to be deleted on exit, so the "inspect later: tether show"
    # the demo prints failed): the journal is what a newcomer explores next
    db = str(Path(tempfile.mkdtemp(prefix="tether-demo-")) / "demo.db")
    try:
        return _served(args, console, db)
    finally:
        if Path(db).exists():  # not when a bad flag stopped the demo before anything ran
            console.print(f"[dim]the journal stays in {escape(db)}: "
                          f"{escape(tether_command())} runs --db {escape(db)} "
                          "(--db FILE puts it elsewhere)[/dim]", soft_wrap=True)
        else:
            with contextlib.suppress(OSError):
                Path(db).parent.rmdir()  # made for it, and empty


def _served(args: argparse.Namespace, console: Console, db: str) -> int:
    """The demo, with the web UI around it when asked (`--serve`, tether/demo/_ui.py)."""
    if not args.serve:
        return asyncio.run(_run(args, console, db))
    from tether.demo._ui import keep_serving, serving

    with serving(db, args.port, console) as (url, _):
        code = asyncio.run(_run(args, console, db))
        keep_serving(console, url)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
