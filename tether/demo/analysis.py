"""The demo's second task: a ReAct agent analyses a bundled CSV with pandas in the sandbox.

The agent stages ``data/sales.csv`` into the run's workspace with one ``ctx.exec`` (a
``sandbox.exec`` step), then gives the model the sandboxed ``python`` tool from
``tether.sandbox.tools.code_tools``. Every call runs in a fresh sandbox; the workspace (files as
content-addressed artifacts) is what persists, so the file the first call writes is read by the
second. The answer is whatever the model's code printed: nothing here knows it.

The prompt is written for a 1.5B local model: a short system prompt, the file and its columns
named in the goal, the two calls spelled out, and one worked episode on another table that shows
the tool-call format and the pandas idioms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether import Context
from tether.agents import ExampleStep, ReActExample, react
from tether.sandbox.tools import code_tools
from tether.store import vocabulary
from tether.tools import ToolRegistry

SALES_FILE = Path(__file__).parent / "data" / "sales.csv"
#: the name the file gets in the run's workspace (the sandbox's working directory)
SALES_NAME = "sales.csv"

DEFAULT_ANALYSIS_GOAL = (
    "The file /workspace/sales.csv has one row per month, region and product, with the columns "
    "month, region, product, units, unit_price. Which region has the highest total revenue "
    "(revenue = units * unit_price), and what is that total? Work in three steps:\n"
    "1. python: load sales.csv with pandas, print df.dtypes and len(df), add the revenue column, "
    "save the table to revenue.csv and print 'saved revenue.csv'.\n"
    "2. python: read revenue.csv, group by region, sum the revenue, sort from highest to lowest "
    "and print the totals.\n"
    "3. Answer with the top region and its total exactly as step 2 printed them."
)

ANALYSIS_SYSTEM = """\
You are a data analyst. You answer questions about CSV files by running Python code with the \
`python` tool.
- Each python call runs in a fresh sandbox with pandas installed. Files you save in the working \
directory /workspace are still there in later calls; variables are not, so reload files.
- Always print() what you need to see: you only get the printed output back.
- Compute every number with code. Never guess or invent a number, and never copy numbers from \
the example.
- If the output shows an error, fix the code and call python again.
- Do every call the task asks for, in order. Answer only when a call has printed the numbers \
that answer the question, and quote them exactly."""

_EXAMPLE_STEP1 = (
    "import pandas as pd\n"
    "df = pd.read_csv('trips.csv')\n"
    "print(df.dtypes)\n"
    "print(len(df))\n"
    "df['income'] = df['rides'] * df['fare']\n"
    "df.to_csv('income.csv', index=False)\n"
    "print('saved income.csv')\n"
)
_EXAMPLE_STEP2 = (
    "import pandas as pd\n"
    "df = pd.read_csv('income.csv')\n"
    "totals = df.groupby('city')['income'].sum().sort_values(ascending=False)\n"
    "print(totals)\n"
)


def _observation(stdout: str, added: list[str], files: list[str]) -> str:
    """What the python tool returns (its main fields), for the worked example."""
    return json.dumps({"exit_code": 0, "stdout": stdout, "stderr": "",
                       "files": {"added": added, "modified": [], "deleted": []},
                       "workspace_files": files})


ANALYSIS_EXAMPLE = ReActExample(
    goal=(
        "The file /workspace/trips.csv has one row per day and city, with the columns day, "
        "city, rides, fare. Which city earned the most in total (income = rides * fare), and "
        "how much? Work in three steps:\n"
        "1. python: load trips.csv with pandas, print df.dtypes and len(df), add the income "
        "column, save the table to income.csv and print 'saved income.csv'.\n"
        "2. python: read income.csv, group by city, sum the income, sort from highest to lowest "
        "and print the totals.\n"
        "3. Answer with the top city and its total exactly as step 2 printed them."
    ),
    steps=[
        ExampleStep(
            thought="Step 1: look at the columns and save the table with an income column.",
            calls=[("python", {"code": _EXAMPLE_STEP1})],
            observations=[_observation(
                "day       object\ncity      object\nrides      int64\nfare     float64\n"
                "dtype: object\n28\nsaved income.csv\n",
                ["income.csv"], ["income.csv", "trips.csv"])],
        ),
        ExampleStep(
            thought="Step 2: read income.csv back and total the income per city.",
            calls=[("python", {"code": _EXAMPLE_STEP2})],
            observations=[_observation(
                "city\nOslo      1008.0\nBergen     839.5\nName: income, dtype: float64\n",
                [], ["income.csv", "trips.csv"])],
        ),
    ],
    answer="Oslo earned the most: 1008.0 in total (Bergen is next with 839.5).",
    answer_thought="Step 3: the printed totals answer the question.",
)

#: set by the demo before a run starts (the agent is module-level so the runtime can name it)
ANALYSIS_STATE: dict[str, Any] = {}


async def analysis_agent(ctx: Context, goal: str) -> dict[str, Any]:
    state = ANALYSIS_STATE
    data = SALES_FILE.read_bytes()
    # `files=` puts the file in the workspace manifest, but the exec stores only the files it
    # changed as artifacts, so later execs could not materialise an input file it left alone.
    # Storing it first (content-addressed, idempotent, same digest) makes it available.
    ctx.store.put_artifact(data)
    staged = await ctx.exec(["wc", "-l", SALES_NAME], files={SALES_NAME: data},
                            backend=state.get("backend"))
    on_staged: Callable[[dict[str, Any]], None] | None = state.get("on_staged")
    if on_staged is not None:
        on_staged(staged)
    if staged.get("exit_code") != 0:
        raise RuntimeError(f"could not stage {SALES_NAME} in the sandbox: "
                           f"{staged.get('error') or staged.get('stderr')}")
    python = next(t for t in code_tools(ctx, backend=state.get("backend"), timeout=60.0)
                  if t.name == "python")
    attempts: list[dict[str, Any]] = []
    task = goal
    for _attempt in range(1 + RETRIES):
        result = await react(
            ctx,
            task,
            model=state["model"],
            tools=ToolRegistry([python]),
            max_steps=state.get("max_steps", 6),
            mode=state.get("mode", "auto"),
            system=ANALYSIS_SYSTEM,
            examples=[ANALYSIS_EXAMPLE],
            on_event=state.get("on_event"),
            model_params=state.get("model_params", {"temperature": 0.0, "max_tokens": 512}),
        )
        attempts.append(result)
        missing = ungrounded_numbers(result["answer"], result["trajectory"])
        if not missing and _NUMBER.search(result["answer"]):
            break
        missing = missing or ["no figure"]
        on_retry: Callable[[list[str]], None] | None = state.get("on_retry")
        if on_retry is not None and len(attempts) <= RETRIES:
            on_retry(missing)
        task = goal + RETRY_NOTE
    return {
        "answer": attempts[-1]["answer"],
        "grounded": not missing,
        "attempts": len(attempts),
        "steps": sum(a["steps"] for a in attempts),
        "tool_calls": sum(a["tool_calls"] for a in attempts),
        "trajectory": [step for a in attempts for step in a["trajectory"]],
    }


#: a small model sometimes answers before running the code (quoting the example's numbers,
#: inventing some, or giving none); such an answer is sent back once, as a new attempt in the
#: same run (the workspace, with any file the first attempt wrote, carries over)
RETRIES = 1
RETRY_NOTE = (
    "\n\nNote: an earlier attempt answered with numbers that no python call had printed. Do "
    "steps 1 and 2 with the python tool first, then answer with the numbers step 2 printed."
)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def ungrounded_numbers(answer: str, trajectory: list[dict[str, Any]]) -> list[str]:
    """The answer's figures (3+ digits or a decimal point) that no python call's output holds.

    This checks provenance, not correctness: a figure the model's code printed is grounded."""
    printed = "".join(
        str(call.get("observation", ""))
        for step in trajectory for call in step.get("calls", []) if call.get("ok")
    )
    figures = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(answer)}
    return sorted(n for n in figures
                  if (len(n.replace(".", "")) >= 3 or "." in n) and not _year(n)
                  and n not in printed)


def _year(figure: str) -> bool:
    return figure.isdigit() and len(figure) == 4 and figure[:2] in ("19", "20")


def code_calls(events: list[Any]) -> list[dict[str, Any]]:
    """The run's sandbox work from its journal, in order: ``sandbox.exec`` steps and python/bash
    tool calls, each with its code (from the model reply that asked for it), exit code, the files
    it brought into the workspace or changed, stdout, and the workspace after it."""
    asked: list[str] = []  # code of the code-tool calls, in the order the model made them
    out: list[dict[str, Any]] = []
    before: dict[str, str] = {}
    code_steps = {vocabulary.tool_step(n) for n in ("python", "bash")}
    for e in events:
        call = vocabulary.model_call(e)
        if call is not None:
            for c in call.tool_calls:
                if c.get("name") in ("python", "bash"):
                    args = c.get("arguments") or {}
                    asked.append(str(args.get("code") or args.get("script") or ""))
            continue
        if e.kind != vocabulary.STEP_COMPLETED or (
                e.name != vocabulary.EXEC_STEP and e.name not in code_steps):
            continue
        name = e.name or ""
        code = "" if name == vocabulary.EXEC_STEP else (asked.pop(0) if asked else "")
        res = vocabulary.exec_result(e)
        if res is None:
            failed = vocabulary.tool_call(e)
            error = f"{failed.error_type}: {failed.error_message}" if failed else "no result"
            out.append({"seq": e.seq, "step": name, "code": code, "exit_code": None,
                        "written": [], "stdout": "", "workspace": sorted(before),
                        "error": error})
            continue
        manifest: dict[str, str] = res.get("manifest") or {}
        files = res.get("files") or {}
        written = {p for p, d in manifest.items() if before.get(p) != d}
        written |= set(files.get("added", [])) | set(files.get("modified", []))
        out.append({"seq": e.seq, "step": name, "code": code, "exit_code": res.get("exit_code"),
                    "written": sorted(written), "stdout": res.get("stdout") or "",
                    "workspace": sorted(manifest), "error": res.get("error")})
        before = dict(manifest)
    return out


def persistence(calls: list[dict[str, Any]]) -> list[tuple[str, int, list[int]]]:
    """(file, index of the exec that wrote it, indexes of later execs whose code names it)."""
    rows = []
    for i, c in enumerate(calls):
        for path in c["written"]:
            readers = [j for j in range(i + 1, len(calls)) if path in calls[j]["code"]]
            rows.append((path, i, readers))
    return rows
