"""docs/cli.md documents every command of the app, and its examples run as printed.

As sqlite-utils tests its CLI reference: the commands are enumerated from the typer app itself,
so a new command without a section fails here; every console block not marked
`<!-- not run: REASON -->` is executed, line by line, with bash in a fresh directory holding the
document's `<!-- file: NAME -->` blocks and a fresh database. A `$ ...` line must exit 0, or the
N of a trailing `# exit N`; the lines printed under it in the document must appear in its
output (stdout and stderr together, whitespace-normalised). `$RUN` is the newest run's id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tether.cli import app

from .markdown_blocks import ROOT, Block, blocks

CLI_DOC = ROOT / "docs" / "cli.md"
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")


def command_names() -> list[str]:
    """Every command a user can type: top-level commands and each group's subcommands."""
    from typer.main import get_command

    root = get_command(app)
    names: list[str] = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        if subs:
            names.extend(f"{name} {sub}" for sub in subs)
        else:
            names.append(name)
    return names


def sections(text: str) -> dict[str, str]:
    """`### \\`tether NAME\\`` heading -> the text of its section."""
    parts = re.split(r"^#{2,3} `tether ([a-z -]+)`\s*$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_command_has_a_section_with_an_example() -> None:
    text = CLI_DOC.read_text(encoding="utf-8")
    documented = sections(text)
    names = command_names()
    assert len(names) >= 20  # the enumeration itself works
    missing = [n for n in names if n not in documented]
    assert not missing, f"commands with no section in docs/cli.md: {missing}"
    without_example = [n for n in names if not re.search(
        rf"^\$ .*\btether {n}\b", documented[n], flags=re.M)]
    assert not without_example, f"sections with no `$ tether NAME` example: {without_example}"
    stale = [n for n in documented if n not in names]
    assert not stale, f"docs/cli.md documents commands the app does not have: {stale}"


def test_the_section_check_catches_an_undocumented_command() -> None:
    """The check above is not vacuous: drop a section and the command is reported missing."""
    text = CLI_DOC.read_text(encoding="utf-8")
    without = re.sub(r"^### `tether cancel`.*?(?=^### )", "", text, flags=re.S | re.M)
    assert "cancel" in sections(text) and "cancel" not in sections(without)


def _newest_run(db: Path) -> str:
    if not db.exists():
        return ""
    from tether.store import SQLiteStore

    store = SQLiteStore(db)
    try:
        runs = store.list_runs(limit=1)
        return runs[0].id if runs else ""
    finally:
        store.close()


def _expected(code: str) -> list[tuple[str, int, list[str]]]:
    """(command, exit code, lines it must print) for each `$ ` line of a console block."""
    steps: list[tuple[str, int, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            exit_mark = EXIT.search(line)
            steps.append((line[2:], int(exit_mark.group(1)) if exit_mark else 0, []))
        elif line.strip() and steps:
            steps[-1][2].append(line.strip())
    return steps


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_the_examples_run_as_printed(tmp_path: Path) -> None:
    doc_blocks = blocks(CLI_DOC)
    for block in doc_blocks:
        if block.file is not None:
            (tmp_path / block.file).write_text(block.code, encoding="utf-8")
    consoles = [b for b in doc_blocks if b.lang == "console" and b.not_run is None]
    assert len(consoles) >= 15
    unclassified = [b.where for b in doc_blocks
                    if b.kind not in ("console", "file", "not run")]
    assert not unclassified, f"blocks neither run, files nor marked not run: {unclassified}"
    db = tmp_path / "docs.db"
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "TETHER_DB": str(db), "COLUMNS": "200", "NO_COLOR": "1",
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(ROOT)}
    ran = 0
    for block in consoles:
        for command, code, lines in _expected(block.code):
            _run_one(block, command, code, lines, tmp_path, {**env, "RUN": _newest_run(db)})
            ran += 1
    assert ran >= 25


def _run_one(block: Block, command: str, code: int, lines: list[str], cwd: Path,
             env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)
    said = _squash(proc.stdout + "\n" + proc.stderr)
    where = f"{block.where}: `{command}`"
    assert proc.returncode == code, (
        f"{where} exited {proc.returncode}, the document says {code}:\n{proc.stdout}\n"
        f"{proc.stderr}")
    assert "Traceback" not in proc.stderr, f"{where}:\n{proc.stderr}"
    for line in lines:
        assert _squash(line) in said, f"{where} did not print {line!r}; it printed:\n{said}"


def test_the_json_fields_documented_are_the_fields_printed(tmp_path: Path) -> None:
    """The field table of docs/cli.md lists exactly what `tether runs --json` prints."""
    from tether import Tether

    db = tmp_path / "fields.db"
    Tether(db).submit("tests.runtime.agents_core:sequential", 1)
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "tether", "runs", "--json"], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    printed = set(json.loads(out)[0])
    table = CLI_DOC.read_text(encoding="utf-8").split("| field | meaning |", 1)[1]
    table = table.split("\n\n", 1)[0]
    documented = {name for row in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|", table, flags=re.M)
                  for name in re.findall(r"`(\w+)`", row)}
    assert {"id", "status", "agent", "tenant", "reason"} <= printed
    assert printed == documented, (f"printed, not documented: {printed - documented}; "
                                   f"documented, not printed: {documented - printed}")


@pytest.mark.parametrize("name", ["runs", "show"])
def test_json_flags_point_to_the_documentation(name: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert "docs/cli.md" in result.output
