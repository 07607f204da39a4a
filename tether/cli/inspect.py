"""`tether runs` and `tether show`: what runs exist and what each one did."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tether.observe import timeline_rows
from tether.store import ALL_STATUSES

from ._common import DB_OPTION, console, fail, handle_errors, open_tether
from ._render import print_timeline, run_dict, status_text, time_text


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("show")(show)


def runs(
    status: str = typer.Option(None, "--status", "-s", help="Filter by status."),
    tenant: str = typer.Option(None, "--tenant"),
    limit: int = typer.Option(50, "--limit"),
    flagged: bool = typer.Option(False, "--flagged", help="Only runs flagged for review."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    db: str = DB_OPTION,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in ALL_STATUSES:
        fail(f"unknown status {status!r}; choose one of {', '.join(ALL_STATUSES)}", 2)
    tether = open_tether(db)
    with handle_errors():
        records = tether.runs(status=status, tenant=tenant, limit=limit)
    if flagged:
        records = [r for r in records if r.flags]
    if as_json:
        print(json.dumps([run_dict(r) for r in records], default=str))
        return
    table = Table("run", "agent", "status", "tenant", "depth", "created", "reason / error")
    for r in records:
        note = r.error or r.reason or ""
        if r.flags:
            note = f"[magenta]flagged: {r.flags[-1].get('reason')}[/] {note}"
        table.add_row(r.id, r.agent, status_text(r.status), r.tenant, str(r.depth),
                      time_text(r.created_at), note[:120])
    console.print(table)


def show(
    run_id: str = typer.Argument(...),
    full: bool = typer.Option(False, "--full", help="Show every detail whole, and the "
                              "traceback of a failed run."),
    as_json: bool = typer.Option(False, "--json", help="Print the run and its timeline as "
                                 "JSON (fields documented in docs/cli.md)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Print each event as it is "
                                "committed until the run ends or waits (exit code by status)."),
    db: str = DB_OPTION,
) -> None:
    """Show a run's timeline: every journaled event with durations, tokens and guard decisions."""
    tether = open_tether(db)
    if follow:
        from .follow import follow_command

        follow_command(tether, run_id)
    with handle_errors():
        record = tether.get(run_id)
        events = tether.events(run_id)
    if as_json:
        console.print_json(json.dumps({
            "run": run_dict(record),
            "timeline": [row.to_json() for row in timeline_rows(events)],
        }, default=str))
        return
    print_timeline(record, events, full=full)
