"""``tether backup DEST``: a consistent copy of the embedded (SQLite) store, taken while
workers run. PostgreSQL has its own tools (``pg_dump``); the command says which to use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ._common import DB_OPTION, console, fail, handle_errors, open_tether


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)


def backup(
    dest: Annotated[Path, typer.Argument(help="The backup file to create (never overwritten).")],
    db: str = DB_OPTION,
) -> None:
    """Copy the database to DEST as of one moment, while runs go on (a `cp` of a database
    being written can tear). The copy is checked before it takes DEST's name; restore by
    pointing --db (TETHER_DB) at it."""
    tether = open_tether(db, must_exist=True)
    take = getattr(tether.store, "backup", None)
    if take is None:
        fail(f"{tether.store.url} is not an SQLite file: back PostgreSQL up with its own tools "
             "(pg_dump for the store's schema, or the server's base backups)", 2)
    started = time.monotonic()
    with handle_errors():
        size = take(dest)
    runs = sum(tether.store.count_runs().values())
    console.print(f"backed up {runs} run(s), {size / 2**20:.1f} MiB, to {dest} in "
                  f"{time.monotonic() - started:.1f}s", markup=False, soft_wrap=True)
