"""Core commands: run, runs, show, signal, cancel, resolve, worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal as _signal
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from tether.observe import timeline_rows, timeline_table
from tether.runtime import resolve_agent, resolve_guards
from tether.store import ALL_STATUSES, Event, RunRecord

from ._common import DB_OPTION, console, fail, handle_errors, open_tether, parse_json

_STATUS_STYLE = {
    "succeeded": "green", "failed": "red", "halted": "red", "cancelled": "yellow",
    "waiting": "cyan", "running": "blue", "queued": "white",
}


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("signal")(signal)
    app.command("cancel")(cancel)
    app.command("resolve")(resolve)
    app.command("worker")(worker)


GUARDS_OPTION = typer.Option(
    None, "--guards", envvar="TETHER_GUARDS",
    help="MODULE:NAME of the Guards this run executes under (recorded with the run).")


def run(
    agent: str = typer.Argument(..., help="MODULE:FUNCTION or path/to/file.py:FUNCTION"),
    input: str = typer.Option(None, "--input", "-i", help="JSON input (or @file.json)."),
    detach: bool = typer.Option(False, "--detach", help="Only queue the run; a worker runs it."),
    tenant: str = typer.Option("default", "--tenant"),
    max_depth: int = typer.Option(None, "--max-depth", help="Maximum child-run depth."),
    guards: str = GUARDS_OPTION,
    db: str = DB_OPTION,
) -> None:
    """Start a run of AGENT. Without --detach it executes here and prints its timeline.

    With --guards, the reference is recorded with the run: every worker that executes it
    enforces those guards, and one that cannot load them leaves the run waiting."""
    payload = parse_json(input, "--input")
    tether = open_tether(db)
    with handle_errors():
        resolve_agent(agent)  # a typo fails here, before anything is written to the store
        if guards:
            resolve_guards(guards)  # likewise for the guards: refuse before queuing
        run_id = tether.submit(agent, payload, tenant=tenant, max_depth=max_depth,
                               guards=guards or None)
    if detach:
        console.print(run_id)
        return
    with handle_errors():
        record = asyncio.run(tether.drive(run_id))
    _print_timeline(record, tether.events(run_id))
    if record.status == "failed":
        raise typer.Exit(1)


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
        print(json.dumps([_run_dict(r) for r in records], default=str))
        return
    table = Table("run", "agent", "status", "tenant", "depth", "created", "reason / error")
    for r in records:
        note = r.error or r.reason or ""
        if r.flags:
            note = f"[magenta]flagged: {r.flags[-1].get('reason')}[/] {note}"
        table.add_row(r.id, r.agent, _status(r.status), r.tenant, str(r.depth), _time(r.created_at),
                      note[:120])
    console.print(table)


def show(
    run_id: str = typer.Argument(...),
    full: bool = typer.Option(False, "--full", help="Show every detail whole, and the "
                              "traceback of a failed run."),
    as_json: bool = typer.Option(False, "--json", help="Print the run and its timeline as "
                                 "JSON (fields documented in docs/cli.md)."),
    db: str = DB_OPTION,
) -> None:
    """Show a run's timeline: every journaled event with durations, tokens and guard decisions."""
    tether = open_tether(db)
    with handle_errors():
        record = tether.get(run_id)
        events = tether.events(run_id)
    if as_json:
        console.print_json(json.dumps({
            "run": _run_dict(record),
            "timeline": [row.to_json() for row in timeline_rows(events)],
        }, default=str))
        return
    _print_timeline(record, events, full=full)


def signal(
    run_id: str = typer.Argument(...),
    name: str = typer.Argument(...),
    payload: str = typer.Argument(None, help="JSON payload"),
    db: str = DB_OPTION,
) -> None:
    """Send signal NAME (with an optional JSON payload) to a run."""
    value = parse_json(payload, "signal payload")
    tether = open_tether(db)
    with handle_errors():
        signal_id = tether.signal(run_id, name, value)
    console.print(f"signal {name!r} delivered to {run_id} (#{signal_id})")


def cancel(run_id: str = typer.Argument(...), db: str = DB_OPTION) -> None:
    """Cancel a run and all of its descendants."""
    tether = open_tether(db)
    with handle_errors():
        touched = tether.cancel(run_id)
    console.print(f"cancelled {len(touched)} run(s): {', '.join(touched)}")


def resolve(
    run_id: str = typer.Argument(...),
    retry: bool = typer.Option(False, "--retry", help="Run the in-doubt step again."),
    skip: bool = typer.Option(False, "--skip", help="Treat it as done (it did happen)."),
    fail_: bool = typer.Option(False, "--fail", help="Treat it as failed."),
    result: str = typer.Option(None, "--result", help="JSON result to use with --skip."),
    db: str = DB_OPTION,
) -> None:
    """Decide what happened to an in-doubt step of a waiting run."""
    chosen = [name for name, on in (("retry", retry), ("skip", skip), ("fail", fail_)) if on]
    if len(chosen) != 1:
        fail("choose exactly one of --retry, --skip, --fail", 2)
    value = parse_json(result, "--result")
    tether = open_tether(db)
    with handle_errors():
        key = tether.resolve(run_id, chosen[0], result=value)
    console.print(f"step {key} of {run_id} resolved: {chosen[0]}; the run is queued again")


def worker(
    concurrency: int = typer.Option(256, "--concurrency"),
    lease_ttl: float = typer.Option(30.0, "--lease-ttl", help="Seconds before a dead worker's "
                                    "runs may be taken over."),
    poll: float = typer.Option(0.2, "--poll", help="Seconds between looks for new work."),
    guards: str = typer.Option(
        None, "--guards", envvar="TETHER_GUARDS", help="MODULE:NAME of the deployment's "
        "Guards, for runs that declare none (a run's own declared guards always apply)."),
    db: str = DB_OPTION,
) -> None:
    """Execute queued runs until interrupted (Ctrl-C hands running runs back to the queue)."""
    tether = open_tether(db)
    if guards:
        with handle_errors():
            resolve_guards(guards)  # a worker that cannot enforce its guards does not start

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = tether.worker(concurrency=concurrency, lease_ttl=lease_ttl, poll_interval=poll,
                          guards=guards or None)
        console.print(f"worker {w.owner} serving {tether.store.url}")
        await w.serve(stop=stop)
        console.print(f"worker {w.owner} stopped after {w.executed} executions")

    with handle_errors():
        asyncio.run(serve())


# -- rendering -------------------------------------------------------------------------------
def _run_dict(r: RunRecord) -> dict[str, Any]:
    return {"id": r.id, "agent": r.agent, "status": r.status, "tenant": r.tenant,
            "parent_id": r.parent_id, "depth": r.depth, "created_at": r.created_at,
            "result": r.result, "error": r.error, "reason": r.reason, "flags": r.flags}


def _status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_timeline(record: RunRecord, events: list[Event], *, full: bool = False) -> None:
    console.print(timeline_table(record, events, full=full))
    console.print(f"status: {_status(record.status)}")
    if record.result is not None:
        result = json.dumps(record.result, default=str, ensure_ascii=False)
        if not full and len(result) > 2000:
            result = result[:2000] + f"… ({len(result) - 2000} more characters: --full)"
        console.print(f"result: {escape(result)}")
    if record.error:
        console.print(f"[red]error:[/] {escape(record.error)}")
        trace = next((e.data.get("traceback") for e in reversed(events)
                      if e.kind == "run_failed" and isinstance(e.data, dict)), None)
        if trace and full:
            console.print(escape(str(trace)), markup=True)
        elif trace:
            console.print("[dim]traceback stored: tether show RUN --full[/dim]")
    if record.reason and not record.finished:
        console.print(f"[cyan]waiting:[/] {record.reason}")
