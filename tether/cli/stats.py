"""`tether stats`: the agent KPIs per agent and per tool, computed from the runs' journals.

Only reads: a database that does not exist is refused, never created. `--json` prints
`KpiReport.to_json()`, whose fields docs/cli.md documents (added to, never renamed or removed).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._common import DB_OPTION, console, fail, handle_errors, open_tether, warn


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)


def stats(
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant's runs."),
    since: str = typer.Option(None, "--since", help="Only runs created since then: a duration "
                              "back from now (30m, 1h, 7d) or a date/time (2026-12-01, "
                              "2026-12-01T08:00; UTC unless a zone is given)."),
    agent: str = typer.Option(None, "--agent", help="Only this agent's runs (as `tether runs` "
                              "lists it)."),
    limit: int = typer.Option(1000, "--limit", min=1, help="Read at most this many runs, "
                              "newest first."),
    window: Annotated[list[str] | None, typer.Option(
        "--context-window", metavar="MODEL=TOKENS",
        help="The context window of a model Tether does not know (repeatable), e.g. "
             "--context-window local:my-model=8192.")] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the KPIs as JSON (fields "
                                 "documented in docs/cli.md) instead of tables."),
    db: str = DB_OPTION,
) -> None:
    """Agent KPIs per agent and per tool: tokens and cost per task, thinking vs tool time,
    P(success) per tool, plan fidelity, thought-to-action ratio, context-window pressure, loop
    interventions and budget halts."""
    import time

    from tether.observe import collect_kpis, kpi_tables, parse_since
    from tether.observe.kpis import SinceError

    try:
        since_ts = None if since is None else parse_since(since, time.time())
    except SinceError as exc:
        fail(str(exc), 2)
    windows = _windows(window or [])
    tether = open_tether(db, must_exist=True)
    with handle_errors():
        report = collect_kpis(tether.store, tenant=tenant, since=since_ts, agent=agent,
                              limit=limit, context_windows=windows)
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    if report.truncated:
        warn(f"only the newest {limit} runs were read; older runs may match too (raise --limit)")
    if not report.runs:
        chosen = [f"{k} {v}" for k, v in (("tenant", tenant), ("since", since),
                                           ("agent", agent)) if v]
        console.print("no runs" + (f" match ({', '.join(chosen)})" if chosen else " yet"))
        return
    for table in kpi_tables(report, console.width):
        console.print(table)


def _windows(given: list[str]) -> dict[str, int]:
    windows: dict[str, int] = {}
    for item in given:
        name, sep, tokens = item.rpartition("=")
        if not sep or not name or not tokens.strip().isdigit() or int(tokens) < 1:
            fail(f"--context-window {item!r} must be MODEL=TOKENS with a positive whole number "
                 "of tokens, e.g. --context-window local:my-model=8192", 2)
        windows[name.strip()] = int(tokens)
    return windows
