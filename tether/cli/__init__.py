"""`tether`: a thin command line over the `Tether` library class.

Areas add their own commands in `tether/cli/<area>.py` with `register(app)`; they are listed in
`_AREAS` so a missing optional area never breaks the core commands. Registering a command must
stay cheap: command modules import the runtime, tools, guards and sandbox inside the commands,
so `tether --help` and `tether runs` do not pay for what they do not use (benchmarks/bench_cli.py).
"""

from __future__ import annotations

import importlib
from inspect import cleandoc
from typing import Any

import typer
from typer._click.core import Command, Context, Parameter  # typer's vendored click
from typer.core import TyperGroup, TyperOption

from ._common import console, fail, handle_errors
from ._core import register as _register_core


def _as_flag(param: Parameter) -> None:
    # typer labels every option with its type; a boolean flag takes no value, so `<bool>` in
    # the help reads as if it needed one. An empty metavar shows the flag alone.
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""


def _reflow(text: str) -> str:
    """A docstring's paragraphs as flowing text. In rich markup mode typer keeps every line
    break of a help text (in `tether --help`'s list, and after the first paragraph of a
    command's help), so the source's 100-column lines came out ragged in any terminal. A
    paragraph of `-`/`*` items, or one marked `\\b`, keeps its lines."""
    paragraphs = cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") or p.lstrip().startswith(("-", "*"))
                       else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


def _flags_as_flags(command: Command, ctx: Context) -> None:
    if command.help:
        command.help = _reflow(command.help)
    for param in command.params:
        _as_flag(param)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        _as_flag(help_option)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _flags_as_flags(sub, ctx)


class _TetherGroup(TyperGroup):
    """The top-level group: shows boolean flags as flags in every command's help."""

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_as_flags(command, ctx)
        return command

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _as_flag(param)
        return params


app = typer.Typer(
    name="tether",
    cls=_TetherGroup,
    help="Durable, sandboxed, governed runtime for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from tether import __version__

        console.print(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print Tether's version and exit."),
) -> None:
    """Durable, sandboxed, governed runtime for LLM agents."""


_AREAS = ("sandbox", "tools", "guards", "doctor", "mcp", "serve", "stats", "trace",
          "retention", "backup")

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
