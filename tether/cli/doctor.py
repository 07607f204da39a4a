"""``tether doctor``: will Tether's parts run on this machine?

One report for the parts that depend on the host: the sandbox backends (which exist, which limits
each enforces) and the embedded model (does this CPU have what the shipped llama.cpp build needs).
A table for people, ``--json`` for scripts. Exit 1 when the default sandbox backend is unavailable;
the local model is optional, so a CPU that cannot run it is reported, not fatal.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import console

if TYPE_CHECKING:
    from rich.table import Table


def _sandbox_table(report: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="sandbox backends", title_justify="left")
    for col in ("backend", "available", "smoke test", "limits enforced", "fix"):
        table.add_column(col, overflow="fold")
    for b in report["backends"]:
        smoke = b.get("smoke_test")
        limits = ", ".join(f"{k}: {v}" for k, v in (b.get("limits_enforced") or {}).items())
        table.add_row(b["backend"], "yes" if b["available"] else "no",
                      "-" if smoke is None else ("ok" if smoke["ok"] else smoke.get("error", "")),
                      limits, b.get("fix") or "")
    return table


def _model_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"local model: {'ok' if report['cpu_ok'] else 'CANNOT RUN'} — {report['message']}",
             f"  llama-cpp-python: {report['llama_cpp'] or 'not installed: ' + report['fix']}"]
    scan = report.get("build_scan")
    if scan is not None:
        for lib, counts in scan.items():
            found = "objdump not found" if counts is None else (
                ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "within the baseline")
            lines.append(f"  {lib}: {found}")
    return lines


def doctor_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    no_smoke: Annotated[bool, typer.Option("--no-smoke", help="skip the test exec")] = False,
    scan_build: Annotated[bool, typer.Option(
        "--scan-build", help="disassemble the local model's libraries and count instructions "
        "outside the CPU baseline (needs objdump, takes seconds)")] = False,
) -> None:
    """Which sandbox backends work here, and whether this CPU runs the local model."""
    from tether.models import local_model_report  # imported here: `tether --help` stays cheap
    from tether.sandbox import default_backend_name, doctor

    report = doctor(smoke=not no_smoke)
    report["local_model"] = local_model_report(scan=scan_build)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        console.print(_sandbox_table(report))
        for line in _model_lines(report["local_model"]):
            console.print(line, markup=False)
    default = default_backend_name()
    for b in report["backends"]:
        if b["backend"] == default and (
            not b["available"] or not b.get("smoke_test", {"ok": True})["ok"]
        ):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
