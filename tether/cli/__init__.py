"""`tether`: a thin command line over the `Tether` library class.

Areas add their own commands in `tether/cli/<area>.py` with `register(app)`; they are listed in
`_AREAS` so a missing optional area never breaks the core commands.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from ._common import console, fail, handle_errors
from ._core import register as _register_core

app = typer.Typer(
    name="tether",
    help="Durable, sandboxed, governed runtime for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_AREAS = ("sandbox", "tools", "guards", "doctor")

_register_core(app)
for _area in _AREAS:
    try:
        _module: Any = importlib.import_module(f"tether.cli.{_area}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"tether.cli.{_area}":
            raise
        continue
    _module.register(app)


def main() -> None:
    with handle_errors():
        app()


__all__ = ["app", "console", "fail", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
