"""What a hostile model, tool or agent can make the operator's terminal do.

Before: the CLI printed their text as it was. `tether run`'s progress lines, `tether show`'s
timeline, `tether runs`, `tether trace`, `show --follow` and the error/reason lines wrote ESC
sequences (`\\x1b[2J` clears the screen, OSC 0 retitles the window, OSC 52 writes the
clipboard, OSC 8 hides a link), C1 `\\x9b`, backspaces, bidi overrides (U+202E) and bare `\\r`
(`ok\\r` then `denied by policy` overwrites a line) to the terminal, and a newline in a step
name, a log message or an error forged a line of its own (`FORGED LINE`). Now each control
character is shown as an escape (`tether.cli._safe`), ordinary Unicode is kept, and `--json`
stays the exact value.

The runs are real (a ScriptedModel and a tool returning such text) and the CLI writes to a
pseudo-terminal, as an operator's shell gets it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .cli_support import ROOT, tether

EVIL = ("ok\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b]8;;http://evil\x1b\\click"
        "\x1b]8;;\x1b\\\x9b31m\rdenied by policy\b\u202eRTL\nFORGED LINE")

AGENT = f'''
from tether.agents import react
from tether.models import ScriptedModel, tool_call
from tether.tools import ToolRegistry, tool

EVIL = {EVIL!r}


@tool(side_effect="read")
def lookup(order: str) -> str:
    """Look an order up."""
    return EVIL


TOOLS = ToolRegistry([lookup])
MODEL = ScriptedModel([tool_call("lookup", {{"order": "A-7"}}), "final " + EVIL])


async def agent(ctx, goal):
    ctx.log("log " + EVIL, x=EVIL)
    await ctx.step("step " + EVIL, lambda: 1)
    await react(ctx, goal, model=MODEL, tools=TOOLS)
    raise RuntimeError("boom " + EVIL)
'''

#: what a terminal obeys: ESC not starting rich's own colours (SGR), C1, BEL, BS, a CR not
#: ending a line (the pty turns "\n" into "\r\n"), bidi controls
_OBEYED = re.compile(rb"\x1b(?!\[[0-9;]*m)|\xc2[\x80-\x9f]|[\x07\x08]|\r(?!\n)"
                     rb"|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def in_terminal(*args: str, cwd: Path, db: Path) -> bytes:
    """The bytes `tether ARGS` writes to a pseudo-terminal (stdout and stderr), 200 wide."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color", "TETHER_DB": str(db),
           "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen([sys.executable, "-m", "tether", *args], stdout=slave,
                            stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the process exited
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(master)
    return out


def obeyed(out: bytes) -> list[bytes]:
    return [out[max(0, m.start() - 30):m.end() + 10] for m in _OBEYED.finditer(out)]


def forged(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\n") if line.lstrip(b"\r\x1b[0m ").startswith(
        b"FORGED") or b"\xe2\x94\x82 FORGED" in line]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, bytes]:
    cwd = tmp_path_factory.mktemp("hostile")
    (cwd / "hostile.py").write_text(AGENT)
    db = cwd / "t.db"
    out = in_terminal("run", "hostile.py:agent", "--input", json.dumps("goal " + EVIL),
                      cwd=cwd, db=db)
    run_id = re.search(rb"journal of run (r[0-9a-f]+)", out)
    assert run_id, out[-2000:]
    return cwd, db, run_id[1].decode(), out


def test_run_progress_and_timeline_show_control_characters(hostile_run: Any) -> None:
    _, _, _, out = hostile_run
    assert obeyed(out) == []
    assert forged(out) == []
    assert b"\\x1b[2J" in out and b"\\u202eRTL" in out  # shown, not dropped
    assert b"step ok\\x1b[2J" in out and b"\\rdenied by policy" in out  # a name, one line


@pytest.mark.parametrize("args", [["show"], ["show", "--full"], ["show", "--follow"],
                                  ["trace"], ["runs"]])
def test_every_view_of_the_run_shows_them(hostile_run: Any, args: list[str]) -> None:
    cwd, db, run_id, _ = hostile_run
    argv = [args[0], *([] if args[0] == "runs" else [run_id]), *args[1:]]
    out = in_terminal(*argv, cwd=cwd, db=db)
    assert obeyed(out) == [], argv
    if "--full" not in args:  # --full adds the traceback: lines by nature, the message's too
        assert forged(out) == [], argv
    assert b"boom ok\\x1b[2J" in out, argv


def test_json_stays_the_exact_value(hostile_run: Any) -> None:
    cwd, db, run_id, _ = hostile_run
    shown = json.loads(tether("show", run_id, "--json", db=db, cwd=cwd).stdout)
    assert shown["run"]["error"] == "RuntimeError: boom " + EVIL
    assert any(row["name"] == "step " + EVIL for row in shown["timeline"])
    runs = json.loads(tether("runs", "--json", db=db, cwd=cwd).stdout)
    assert runs[0]["error"] == "RuntimeError: boom " + EVIL


def test_safe_text_keeps_ordinary_unicode() -> None:
    from tether.cli._safe import safe_text

    kind = "café 日本 👩\u200d💻 → ✓ ─│"
    assert safe_text(kind) == kind and safe_text(kind, one_line=True) == kind
    assert safe_text("a\r\nb\tc\n") == "a\nb\tc\n"  # a Windows line break is a line break
    assert safe_text("a\rb\x1b]0;t\x07\x9b\u202e\u2066\x7f") == (
        "a\\rb\\x1b]0;t\\x07\\x9b\\u202e\\u2066\\x7f")
    assert safe_text("a\nb\tc", one_line=True) == "a\\nb\\tc"


def test_a_log_line_stays_one_record() -> None:
    from tether.cli._logging import TextFormatter

    record = logging.LogRecord("tether.worker", logging.INFO, __file__, 1,
                               "agent said: x\n2026-01-01T00:00:00.000Z ERROR tether: forged"
                               "\x1b]0;t\x07", None, None)
    record.tether_fields = {"k": "\u202e\x9b"}
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "x\\n2026-01-01" in line and "\\x9b" in line


def test_approvals_listing_is_one_line_each_and_no_markup(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from typer.testing import CliRunner

    from tether import Tether
    from tether.cli import app
    from tether.guards import inbox
    from tether.guards.approvals import ApprovalRequest
    from tether.guards.inbox import PendingApproval

    db = tmp_path / "t.db"
    Tether(str(db)).close()
    request = ApprovalRequest(id="r1.a1", run_id="r1",
                              tool="mcp_tool\n[link=http://evil]r2.a1[/link]\x1b[2J",
                              args={"a": "\u202e"}, rule="rule\rfake")
    monkeypatch.setattr(inbox, "list_pending", lambda *a, **k: [
        PendingApproval(request, "default", (), 0.0)])
    out = CliRunner().invoke(app, ["approvals", "--db", str(db)]).output
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert "\\n[link=http://evil]r2.a1[/link]\\x1b[2J" in lines[0]
    assert "rule\\rfake" in lines[1]


def test_tools_list_shows_a_description_as_text(tmp_path: Path) -> None:
    (tmp_path / "my_tools.py").write_text(
        "from tether.tools import tool\n\n\n@tool(side_effect='read')\n"
        "def add(a: int) -> int:\n"
        "    '''[link=http://evil]Add[/link] \\x1b]0;title\\x07 one.'''\n"
        "    return a + 1\n")
    out = tether("tools", "list", "--module", "my_tools.py", cwd=tmp_path,
                 env={"FORCE_COLOR": "1"}).stdout
    assert "[link=http://evil]Add[/link] \\x1b]0;title\\x07 one." in out
    assert "\x1b]" not in out


def test_emoji_codes_in_data_are_shown_as_written(tmp_path: Path) -> None:
    """Rich turns `:x:` into a picture by default: a run's result `team :thumbs_up: a:b:c :x:`
    was printed as `team 👍 a🅱c ❌`, and `--agent shop.py:new` named `shop.py🆕` in an error."""
    (tmp_path / "echo.py").write_text("async def echo(ctx, text):\n    return text\n")
    text = "team :thumbs_up: see a:b:c :x:"
    out = tether("run", "echo.py:echo", "-i", json.dumps(text), db=tmp_path / "t.db",
                 cwd=tmp_path).stdout
    assert text in out, out
    err = tether("worker", "--agent", "shop.py:new", db=tmp_path / "t.db", cwd=tmp_path,
                 check=False).stderr
    assert "shop.py:new" in err and "\U0001f195" not in err, err
