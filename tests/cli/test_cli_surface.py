"""Issue 17 §14 and §16: errors name the flag that was wrong, `--version`, flags shown as flags
in every help page, and `tether tools list` names a file tool's source as the file.

Before: a bad `--result` or signal payload suggested `--input '{"n": 3}'`; `tether --version`
was "No such option"; help showed `--json <bool>`; `tools list --module x.py` showed
`_tether_tools_9068792888522686564:add`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether import Tether, __version__
from tether.cli import app

from .cli_support import tether

runner = CliRunner()


@pytest.fixture
def waiting(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "surface.db"
    t = Tether(db)
    run_id = t.submit("tests.runtime.agents_core:waits_then_steps", {})
    asyncio.run(t.drive(run_id))
    return db, run_id


@pytest.mark.parametrize("bad", ["{oops", "{'single': 1}", "[1,", "nope"])
def test_a_bad_result_names_result(waiting: tuple[Path, str], bad: str) -> None:
    db, run_id = waiting
    proc = tether("resolve", run_id, "--skip", "--result", bad, db=db, check=False)
    assert proc.returncode == 1
    assert "--result is not valid JSON" in proc.stderr and "e.g. --result '" in proc.stderr
    assert "--input" not in proc.stderr


@pytest.mark.parametrize("bad", ["{oops", "{'ok': true}", "True"])
def test_a_bad_signal_payload_shows_the_signal_command(waiting: tuple[Path, str],
                                                      bad: str) -> None:
    db, run_id = waiting
    proc = tether("signal", run_id, "go", bad, db=db, check=False)
    assert proc.returncode == 1
    assert "the signal payload is not valid JSON" in proc.stderr
    assert "tether signal RUN NAME '" in proc.stderr and "--input" not in proc.stderr


def test_a_missing_payload_file_names_the_flag(waiting: tuple[Path, str], tmp_path: Path) -> None:
    db, run_id = waiting
    proc = tether("resolve", run_id, "--skip", "--result", f"@{tmp_path}/nope.json", db=db,
                  check=False)
    assert proc.returncode == 1 and "--result: file" in proc.stderr


@pytest.mark.parametrize(("content", "said"), [
    (b'{"n": 3,\n', "is not valid JSON (Expecting property name enclosed in double quotes at "
                    "line 2, column 1)"),
    (b"\xff\xfe{}", "cannot be read as UTF-8 text"),
    (None, "cannot be read as UTF-8 text: Is a directory"),
])
def test_a_bad_input_file_is_named(tmp_path: Path, content: bytes | None, said: str) -> None:
    path = tmp_path / "in.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    proc = tether("run", "tests.runtime.agents_core:sequential", "--input", f"@{path}",
                  db=tmp_path / "x.db", check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"--input file '{path}' {said}" in proc.stderr
    assert "Traceback" not in proc.stderr and "Quote it for the shell" not in proc.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was written


def test_a_negative_max_depth_is_refused(tmp_path: Path) -> None:
    proc = tether("run", "tests.runtime.agents_core:sequential", "--max-depth", "-1",
                  db=tmp_path / "x.db", check=False)
    assert proc.returncode == 2 and "--max-depth" in proc.stderr
    assert "greater than or equal to 0" in proc.stderr


def test_bad_input_still_names_input(tmp_path: Path) -> None:
    proc = tether("run", "tests.runtime.agents_core:sequential", "--input", "{x",
                  db=tmp_path / "x.db", check=False)
    assert proc.returncode == 1 and "e.g. --input '" in proc.stderr


def test_version() -> None:
    proc = tether("--version")
    assert proc.stdout.strip() == f"tether {__version__}" and proc.stderr == ""


def _all_command_paths() -> list[list[str]]:
    from typer.main import get_command

    root = get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "tether")
def test_help_shows_flags_as_flags(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output, result.output


def test_options_that_take_values_keep_their_type() -> None:
    result = runner.invoke(app, ["runs", "--help"], env={"COLUMNS": "200"})
    assert "<int>" in result.output and "<str>" in result.output


def test_tools_list_names_a_file_tool_by_its_file(tmp_path: Path) -> None:
    tools_file = tmp_path / "my_tools.py"
    tools_file.write_text(
        "from tether.tools import tool\n\n"
        "@tool\n"
        "def add(a: int, b: int) -> int:\n"
        '    """Add two numbers."""\n'
        "    return a + b\n")
    out = tether("tools", "list", "--module", "my_tools.py", cwd=tmp_path).stdout
    assert "my_tools.py:add" in out and "_tether_tools_" not in out
    elsewhere = tether("tools", "list", "--module", str(tools_file)).stdout
    assert f"{tools_file}:add" in elsewhere or "my_tools.py:add" in elsewhere
    assert "_tether_tools_" not in elsewhere
