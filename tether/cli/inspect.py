"""`tether runs` and `tether show`: what runs exist and what each one did.

Both only read: a database that does not exist is refused, never created. Run ids are never cut
(other columns fold instead), and `--json` gives scripts the fields docs/cli.md documents.
"""

from __future__ import annotations

import json

import typer

from ._common import (
    DB_OPTION,
    RUN_ID_HELP,
    console,
    fail,
    full_run_id,
    handle_errors,
    open_reader,
    open_tether,
)
from ._render import print_timeline, run_dict, run_note, status_style, time_text


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("show")(show)


def runs(
    status: str = typer.Option(None, "--status", "-s", help="Filter by status."),
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant's runs."),
    limit: int = typer.Option(50, "--limit", help="At most this many runs (1 or more)."),
    flagged: bool = typer.Option(False, "--flagged", help="Only runs flagged for review."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (fields documented "
                                 "in docs/cli.md) instead of a table."),
    db: str = DB_OPTION,
) -> None:
    """List runs, newest first."""
    from tether.store import ALL_STATUSES

    if status is not None and status not in ALL_STATUSES:
        fail(f"unknown status {status!r}; choose one of {', '.join(ALL_STATUSES)}", 2)
    if limit < 1:  # 0 listed nothing, then said "no runs in DB" of a database holding runs
        fail(f"--limit {limit}: give 1 or more (the most runs to list)", 2)
    store = open_reader(db)
    with handle_errors():
        records = store.list_runs(status=status, tenant=tenant, flagged=flagged, limit=limit)
        leases = store.leases([r.id for r in records if r.status == "running"])
        now = store.now()  # the clock the leases were written in, not this host's
    if as_json:
        print(json.dumps([run_dict(r, leases.get(r.id), now=now) for r in records],
                         default=str))
        return
    if not records:  # a header alone reads like a broken table, and says nothing of the filters
        given = [f"{flag} {value}" for flag, value in (("--status", status), ("--tenant", tenant))
                 if value] + (["--flagged"] if flagged else [])
        console.print(f"no runs{' matching ' + ' '.join(given) if given else ''} in {store.url}",
                      markup=False, soft_wrap=True)
        return
    from ._grid import Cell, grid_lines

    rows = []
    for r in records:
        note = [Cell(run_note(r, leases.get(r.id), now=now))]
        if r.flags:
            note.insert(0, Cell(f"flagged: {r.flags[-1].get('reason')}", "magenta"))
        rows.append([Cell(r.id), Cell(r.agent), Cell(r.status, status_style(r.status)),
                     Cell(r.tenant), Cell(str(r.depth)), Cell(time_text(r.created_at)),
                     Cell(" ".join(c.text for c in note), note[0].style)])
    headers = ("run", "agent", "status", "tenant", "depth", "created", "reason / error")
    # the id is what people copy: never cut or wrapped; every other column wraps at spaces, and
    # where a word would not fit, the agent and the reason go on lines of their own (stack)
    for line in grid_lines(headers, rows, console.width, keep=1, stack=(1, 6)):
        console.print(line, soft_wrap=True, highlight=False)


def show(
    run_id: str = typer.Argument(..., help=RUN_ID_HELP),
    full: bool = typer.Option(False, "--full", help="Show every detail whole, and the "
                              "traceback of a failed run."),
    as_json: bool = typer.Option(False, "--json", help="Print the run and its timeline as "
                                 "JSON (fields documented in docs/cli.md)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Print each event as it is "
                                "committed until the run ends or waits (exit code by status)."),
    every_row: bool = typer.Option(False, "--all", help="Every event of a long journal (by "
                                   "default the first 50 and the last 200)."),
    db: str = DB_OPTION,
) -> None:
    """Show a run's timeline: every journaled event with durations, tokens and guard decisions."""
    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    if follow:
        from .follow import follow_command

        follow_command(tether, run_id)
    with handle_errors():
        record = tether.get(run_id)
        events = tether.events(run_id)
        lease = tether.leases([run_id]).get(run_id)
        now = tether.store.now()
    if as_json:
        from tether.observe import timeline_rows

        print(json.dumps({
            "run": run_dict(record, lease, now=now),
            "timeline": [row.to_json() for row in timeline_rows(events)],
        }, default=str, ensure_ascii=False, indent=2))
        return
    print_timeline(record, events, full=full, lease=lease, now=now, every_row=every_row,
                   store=tether.store)
