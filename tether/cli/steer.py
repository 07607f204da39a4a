"""`tether signal`, `tether cancel`, `tether resolve`: steer runs from outside.

Each takes a run id or a unique prefix of one. A signal the run is not waiting for is still kept
(it may ask for it later: early signals are a feature), but a warning names what it waits for,
so a typo in the name does not pass as delivered.
"""

from __future__ import annotations

import typer

from ._common import (
    DB_OPTION,
    RUN_ID_HELP,
    console,
    fail,
    full_run_id,
    handle_errors,
    open_tether,
    parse_json,
    warn,
)


def register(app: typer.Typer) -> None:
    app.command("signal")(signal)
    app.command("cancel")(cancel)
    app.command("resolve")(resolve)


def signal(
    run_id: str = typer.Argument(..., help=RUN_ID_HELP),
    name: str = typer.Argument(..., help="Signal name, as the agent's ctx.wait_for asks."),
    payload: str = typer.Argument(None, help="JSON payload (or @file.json)."),
    db: str = DB_OPTION,
) -> None:
    """Send signal NAME (with an optional JSON payload) to a run."""
    value = parse_json(payload, "the signal payload",
                       example="tether signal RUN NAME '{\"ok\": true}'")
    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    with handle_errors():
        waiting = tether.awaited_signals(run_id)
        signal_id = tether.signal(run_id, name, value)
    console.print(f"signal {name!r} delivered to {run_id} (#{signal_id})")
    if waiting and name not in waiting:
        names = ", ".join(repr(n) for n in waiting)
        warn(f"run {run_id} is waiting for signal {names}, not {name!r}; {name!r} is kept in "
             "case the run asks for it later. A typo? Send the name it waits for.")
    if name.startswith("approval:") and not _signed(value):
        warn(f"the guards take only signed decisions: the run rejects this one and keeps "
             f"waiting. Decide it with `tether approve {name.removeprefix('approval:')} --key "
             "YOUR.key --keys approvers.yaml` (or `tether deny`).")


def _signed(value: object) -> bool:
    """Whether a payload looks like a signed approval decision (what `tether approve` and
    `tether.guards.sign_decision` make), which an approval's signal may carry."""
    return isinstance(value, dict) and bool(value.get("signature"))


def cancel(run_id: str = typer.Argument(..., help=RUN_ID_HELP), db: str = DB_OPTION) -> None:
    """Cancel a run and all of its descendants."""
    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    with handle_errors():
        touched = tether.cancel(run_id)
    console.print(f"cancelled {len(touched)} run(s): {', '.join(touched)}")


def resolve(
    run_id: str = typer.Argument(..., help=RUN_ID_HELP),
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
    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    with handle_errors():
        key = tether.resolve(run_id, chosen[0], result=value)
    console.print(f"step {key} of {run_id} resolved: {chosen[0]}; the run is queued again")
