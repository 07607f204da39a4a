"""``tether doctor``: will Tether's parts run on this machine?

One report for the parts that depend on the host: the sandbox backends (which exist, which limits
each enforces), the embedded model (does this CPU have what the shipped llama.cpp build needs) and
the store (`--db`/`TETHER_DB`, or the default database when it exists: free disk next to an SQLite
journal, this host's clock against the PostgreSQL server's). A table for people, ``--json`` for
scripts. Exit 1 when the default sandbox backend is unavailable or the store named cannot be
opened; the local model is optional, so a CPU that cannot run it is reported, not fatal.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import DB_OPTION, console

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


def _store_report(db: str | None) -> dict[str, Any] | None:
    """None when no database is named and the default one does not exist yet."""
    from tether.store import default_db_path, open_store, store_report

    target = db or default_db_path()
    if db is None and not os.path.exists(target):
        return None
    try:
        store = open_store(target, must_exist=True)
    except Exception as exc:  # reported, not raised: the rest of the report still helps
        return {"where": str(target), "error": str(exc)}
    try:
        return store_report(store)
    except Exception as exc:
        return {"where": store.url, "error": str(exc)}
    finally:
        store.close()


def _store_lines(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["store: none yet (the first run creates ./.tether/tether.db; --db names another)"]
    if "error" in report:
        return [f"store: CANNOT OPEN {report['where']} — {report['error']}"]
    detail = (f"clock offset {report['clock_offset_s'] * 1000:+.1f} ms vs this host"
              if report["backend"] == "postgres"
              else f"{report['free_bytes'] / 2**30:.1f} GiB free")
    lines = [f"store: {report['backend']} {report['where']} (schema {report['schema_version']}, "
             f"{detail})"]
    return lines + [f"  warning: {w}" for w in report["warnings"]]


def doctor_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    no_smoke: Annotated[bool, typer.Option("--no-smoke", help="skip the test exec")] = False,
    scan_build: Annotated[bool, typer.Option(
        "--scan-build", help="disassemble the local model's libraries and count instructions "
        "outside the CPU baseline (needs objdump, takes seconds)")] = False,
    db: str | None = DB_OPTION,
) -> None:
    """Which sandbox backends work here, and whether this CPU runs the local model."""
    from tether.models import local_model_report  # imported here: `tether --help` stays cheap
    from tether.sandbox import default_backend_name, doctor

    report = doctor(smoke=not no_smoke)
    report["local_model"] = local_model_report(scan=scan_build)
    report["store"] = _store_report(db)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        console.print(_sandbox_table(report))
        for line in _model_lines(report["local_model"]) + _store_lines(report["store"]):
            console.print(line, markup=False)
    if report["store"] is not None and "error" in report["store"]:
        raise typer.Exit(1)
    default = default_backend_name()
    for b in report["backends"]:
        if b["backend"] == default and (
            not b["available"] or not b.get("smoke_test", {"ok": True})["ok"]
        ):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
