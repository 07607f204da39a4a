"""Shared CLI plumbing: one console, one way to report an error and exit, one way to open the
database and to read a run id.

Nothing here imports the runtime at module level: every command module imports this one, and
`tether --help` must not pay for the runtime (the imports below still point down the layers).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from ._safe import SafeConsole

if TYPE_CHECKING:
    from tether.runtime import Tether
    from tether.store import Store
    from tether.tools import ToolRegistry

# what they print is filtered for terminal control characters (`_safe`): much of it came from
# models, tools and agent code
console = SafeConsole(highlight=False)
err_console = SafeConsole(stderr=True, highlight=False)

DB_OPTION = typer.Option(
    None, "--db", envvar="TETHER_DB", help="Database file (default ./.tether/tether.db)."
)
RUN_ID_HELP = "Run id, or its first characters if they match one run only."


def fail(message: str, code: int = 1) -> NoReturn:
    # the message is shown as written (a bracket in it is not markup), never cut or wrapped
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(message, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print("[bold yellow]warning:[/] ", end="")
    err_console.print(message, markup=False, soft_wrap=True)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn Tether's own errors into one clear line and a non-zero exit, never a traceback."""
    try:
        yield
    except Exception as exc:
        from tether.runtime import TetherError
        from tether.store import StoreError

        if isinstance(exc, (TetherError, StoreError)):
            fail(str(exc))
        raise


def open_tether(db: str | None, *, must_exist: bool = False) -> Tether:
    """`must_exist`: the command looks at or steers runs that must already be there, so a
    database file that does not exist is an error (a mistyped --db must not silently become a
    new, empty database)."""
    from tether.runtime import Tether
    from tether.store import default_db_path

    with handle_errors():
        return Tether(db or default_db_path(), must_exist=must_exist)


def open_reader(db: str | None) -> Store:
    """The store alone, for commands that only list what is there (`tether runs`): they do not
    pay for importing the runtime. The database must exist, as for `open_tether(must_exist=)`."""
    from tether.store import open_store

    with handle_errors():
        return open_store(db, must_exist=True)


def full_run_id(tether: Tether, given: str) -> str:
    """The run id `given` names: the id itself or a prefix of exactly one id."""
    with handle_errors():
        return tether.resolve_run_id(given)


def parse_json(text: str | None, flag: str, example: str | None = None) -> Any:
    """Parse the JSON a user gave with `flag`; an error names that flag and shows how to quote
    it (`example`, default `FLAG '{"n": 3}'`)."""
    if text is None:
        return None
    source = flag
    if text.startswith("@"):
        path = text[1:]
        source = f"{flag} file {path!r}"
        if not os.path.exists(path):
            fail(f"{flag}: file {path!r} does not exist")
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            fail(f"{source} cannot be read as UTF-8 text: {why}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if source != flag:  # the shell played no part: no quoting advice
            fail(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                 f"{exc.colno})")
        how = example or f"{flag} '{{\"n\": 3}}'"
        fail(
            f"{flag} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            f"{text[:80]!r}. Quote it for the shell, e.g. {how}"
        )


def load_registry(ref: str, flag: str = "--tools") -> ToolRegistry:
    """The tools `ref` names (MODULE:REGISTRY, MODULE or FILE.py), loaded one way for every
    command that takes them; one that does not load is bad usage: one line, exit 2."""
    from tether.tools import ToolError, ToolRegistry, tools_from_module

    try:
        return ToolRegistry(tools_from_module(ref))
    except (ToolError, ImportError, OSError) as exc:
        fail(f"{flag} {ref}: {exc}", 2)
