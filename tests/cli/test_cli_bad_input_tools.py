"""Bad input to `tether tools` and `tether mcp serve --tools`, as a new user types it.

Before: a tool module that failed to import (a missing dependency, a syntax error, a module
raising at import) printed its whole traceback and exited 1 from `tools list|lock|check` (and
`mcp serve --tools` for any error but ImportError); `tools add-mcp` wrote a server whose program
does not exist, found out only at the next `tools lock`; the message about an MCP server that
cannot be reached told a CLI user to "pass required=False", and one that never answered ended
in "..". Now: one line naming the module (or program, or config file) and what to do, exit 2.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from .cli_support import tether

GOOD = ('from tether.tools import tool\n\n\n@tool\ndef hi(name: str) -> str:\n'
        '    """Say hi."""\n    return name\n')
MODULES = {
    "missing_dep.py": "import json\nimport requestz\n",
    "bad_syntax.py": "def f(:\n    pass\n",
    "raising_mod.py": "raise RuntimeError('no config at import')\n",
}
# (how the module is named on the command line, what the one line says)
BROKEN = [
    ("missing_dep.py", "cannot import tool module file 'missing_dep.py': No module named "
     "'requestz' (missing_dep.py, line 2); install the package that provides 'requestz'"),
    ("missing_dep", "cannot import tool module 'missing_dep': No module named 'requestz' "
     "(missing_dep.py, line 2)"),
    ("bad_syntax.py", "cannot import tool module file 'bad_syntax.py': syntax error "
     "(invalid syntax) in bad_syntax.py, line 1; fix the file"),
    ("raising_mod", "cannot import tool module 'raising_mod': it raised RuntimeError: no config "
     "at import (raising_mod.py, line 1); fix the module"),
    ("raising_mod.py", "it raised RuntimeError: no config at import (raising_mod.py, line 1)"),
]


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The error line of a command that must fail with `code`, one line and no traceback."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "good_tools.py").write_text(GOOD)
    return tmp_path


@pytest.mark.parametrize("command", ["list", "lock", "check"])
@pytest.mark.parametrize(("module", "message"), BROKEN, ids=[m for m, _ in BROKEN])
def test_a_tool_module_that_fails_to_import_is_one_line(
        project: Path, command: str, module: str, message: str) -> None:
    proc = tether("tools", command, "--module", module, cwd=project, check=False)
    assert message in one_line_error(proc)
    assert not (project / "tools.lock.json").exists()


def test_an_unknown_module_name_says_to_check_it(project: Path) -> None:
    line = one_line_error(tether("tools", "list", "--module", "no_such_tools_xyz",
                                 cwd=project, check=False))
    assert "cannot import tool module 'no_such_tools_xyz': No module named " in line
    assert "check the name, or give a file path" in line


@pytest.mark.parametrize(("module", "message"), BROKEN[2:], ids=[m for m, _ in BROKEN[2:]])
def test_mcp_serve_names_the_tools_flag_for_a_module_that_fails(
        project: Path, module: str, message: str) -> None:
    proc = tether("mcp", "serve", "--tools", module, "--no-policy", db=project / "t.db",
                  cwd=project, check=False)
    line = one_line_error(proc)
    assert line.startswith(f"error: --tools {module}: ") and message in line


def test_a_module_that_failed_imports_again_once_fixed(project: Path) -> None:
    """The half-run module is not left in `sys.modules` for a retry in the same process."""
    from tether.tools import ToolDefinitionError, tools_from_module

    path = project / "flaky_tools.py"
    path.write_text("import requestz\n" + GOOD)
    with pytest.raises(ToolDefinitionError, match="No module named 'requestz'"):
        tools_from_module(str(path))
    path.write_text(GOOD)
    assert [t.name for t in tools_from_module(str(path))] == ["hi"]


@pytest.mark.parametrize(("program", "message"), [
    ("/no/such/binary", "server command '/no/such/binary' (after `--`) does not exist"),
    ("no-such-mcp-server-xyz", "server command 'no-such-mcp-server-xyz' (after `--`) is not "
     "on PATH; install it, or give its full path"),
], ids=["path", "name"])
def test_add_mcp_refuses_a_program_that_does_not_exist(
        tmp_path: Path, program: str, message: str) -> None:
    proc = tether("tools", "add-mcp", "ghost", "--", program, "--flag", cwd=tmp_path,
                  check=False)
    assert message in one_line_error(proc)
    assert not (tmp_path / "mcp.yaml").exists()


def test_add_mcp_takes_a_program_on_path(tmp_path: Path) -> None:
    proc = tether("tools", "add-mcp", "sleeper", "--", "sleep", "1", cwd=tmp_path)
    assert "added MCP server 'sleeper' (sleep 1)" in proc.stdout
    assert (tmp_path / "mcp.yaml").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_is_down_gets_cli_advice(tmp_path: Path) -> None:
    (tmp_path / "mcp.yaml").write_text(
        f"servers:\n  down:\n    url: http://127.0.0.1:{free_port()}/mcp\n")
    line = one_line_error(tether("tools", "lock", "--mcp", "mcp.yaml", cwd=tmp_path,
                                 check=False))
    assert "MCP server 'down' (http://127.0.0.1:" in line and "cannot be reached" in line
    assert "required=False" not in line
    assert f"remove it from {tmp_path / 'mcp.yaml'} to go on without it" in line


async def test_a_server_that_never_answers_says_so_once(tmp_path: Path) -> None:
    """The reason, for whoever runs the server, not the model's text (which ends in its own
    full stop: "... unavailable.. Check its command")."""
    from tether.tools.mcp import MCPConfigError, MCPServerConfig, MCPTools

    mute = MCPServerConfig.stdio("mute", "sleep", "1000")
    with pytest.raises(MCPConfigError) as caught:
        async with MCPTools([mute], connect_timeout=0.5):
            pass
    text = str(caught.value)
    assert "cannot be reached: no connection within 0.5s. Check its command or URL" in text
    assert ".." not in text and "Continue without this tool" not in text
