"""`tether signal`, `tether cancel`, `tether resolve`: steer runs from outside."""

from __future__ import annotations

import typer

from ._common import DB_OPTION, console, fail, handle_errors, open_tether, parse_json


def register(app: typer.Typer) -> None:
    app.command("signal")(signal)
    app.command("cancel")(cancel)
    app.command("resolve")(resolve)


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
