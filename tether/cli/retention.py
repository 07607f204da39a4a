"""``tether delete`` and ``tether prune``: remove finished runs from the journal.

Destructive, so neither acts without being told to: ``delete`` asks unless ``--yes``,
``prune`` needs ``--yes`` (or ``--dry-run`` to see what would go) — a retention job in cron
must not hang on a question, and a mistyped ``--before`` must not empty a database."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ._common import DB_OPTION, RUN_ID_HELP, console, fail, full_run_id, handle_errors, open_tether


def register(app: typer.Typer) -> None:
    app.command("delete")(delete)
    app.command("prune")(prune)


def delete(
    run_id: str = typer.Argument(..., help=RUN_ID_HELP + " The root of a finished run tree."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    db: str = DB_OPTION,
) -> None:
    """Delete a finished run and everything below it: journal, signals, leases, budget and
    trace marks, and the artifacts it kept that nothing else mentions (those put within the
    last hour wait for `tether prune`). The tenant's usage and the audit log stay."""
    tether = open_tether(db, must_exist=True)
    run_id = full_run_id(tether, run_id)
    if not yes and not typer.confirm(f"delete run {run_id} and its whole tree for good?"):
        fail("nothing deleted", 1)
    with handle_errors():
        deleted = tether.delete(run_id)
    console.print(f"deleted {len(deleted.runs)} run(s) ({deleted.events} events, "
                  f"{deleted.artifacts} artifact(s)): {', '.join(deleted.runs)}", markup=False)


def prune(
    before: str = typer.Option(..., "--before", help="Delete run trees that ended before "
                               "then: a duration back from now (30d, 12h, 2w) or a date "
                               "(2026-11-01, UTC unless a zone is given)."),
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="Only trees whose root ended so (succeeded, failed, cancelled, "
        "halted); repeatable.")] = None,
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant's runs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; "
                                 "delete nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete (required unless --dry-run)."),
    db: str = DB_OPTION,
) -> None:
    """Delete every finished run tree that ended before a moment (retention), then the
    artifacts nothing stored mentions any more. Trees with a run still going are kept, and
    listed."""
    from tether.observe.kpis import SinceError, parse_since

    if not (yes or dry_run):
        fail("prune deletes runs for good: add --yes to delete, or --dry-run to see what "
             "would go", 2)
    tether = open_tether(db, must_exist=True)
    try:
        cutoff = parse_since(before, tether.store.now(), flag="--before")
    except SinceError as exc:
        fail(str(exc), 2)
    if cutoff > tether.store.now():
        fail(f"--before {before!r} is in the future; give a past moment (e.g. 30d)", 2)
    with handle_errors():
        try:
            deleted = tether.prune(finished_before=cutoff, tenant=tenant,
                                   statuses=status or None, dry_run=dry_run)
        except ValueError as exc:
            fail(f"--status: {exc}", 2)
    ended = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(cutoff))
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(deleted.roots)} run tree(s), {len(deleted.runs)} run(s), "
                  f"{deleted.events} events: those that ended before {ended}; "
                  f"{deleted.artifacts} artifact(s) nothing mentions any more", markup=False)
    for run_id, why in deleted.kept.items():
        console.print(f"kept {run_id}: {why}", markup=False)
