"""Shared CLI plumbing: one console, one way to report an error and exit."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console

from tether.runtime import Tether, TetherError
from tether.store import StoreError, default_db_path

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DB_OPTION = typer.Option(
    None, "--db", envvar="TETHER_DB", help="Database file (default ./.tether/tether.db)."
)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn Tether's own errors into one clear line and a non-zero exit, never a traceback."""
    try:
        yield
    except (TetherError, StoreError) as exc:
        fail(str(exc))


def open_tether(db: str | None) -> Tether:
    with handle_errors():
        return Tether(db or default_db_path())


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    if text.startswith("@"):
        path = text[1:]
        if not os.path.exists(path):
            fail(f"{what}: file {path!r} does not exist")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            f"{text[:80]!r}. Quote it for the shell, e.g. --input '{{\"n\": 3}}'"
        )
