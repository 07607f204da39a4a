"""The core commands, one module per purpose: execute (run, worker), inspect (runs, show),
steer (signal, cancel, resolve)."""

from __future__ import annotations

import typer

from . import execute, inspect, steer


def register(app: typer.Typer) -> None:
    for area in (execute, inspect, steer):
        area.register(app)
