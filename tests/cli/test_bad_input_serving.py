"""Bad input to `tether mcp serve --http`, `tether serve` and `tether sandbox run`.

Before: `mcp serve --http` on a busy port printed uvicorn's error, "Task exception was never
retrieved" and two tracebacks, exit 3; a port above 65535 was an OverflowError traceback (there
and in `serve`); `sandbox run --timeout 0` a ValueError traceback and `sandbox run` of a binary
file a UnicodeDecodeError one. Now: one line naming the flag or file and what to do.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from .cli_support import tether

GOOD = ('from tether.tools import tool\n\n\n@tool\ndef hi(name: str) -> str:\n'
        '    """Say hi."""\n    return name\n')


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def mcp_http(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "good_tools.py").write_text(GOOD)
    return tether("mcp", "serve", "--tools", "good_tools.py", "--no-policy", "--http", *args,
                  db=tmp_path / "t.db", cwd=tmp_path, check=False)


def test_mcp_serve_http_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(mcp_http(tmp_path, "--port", str(port)), 1)
    assert f"--host 127.0.0.1 --port {port}: cannot listen there" in line
    assert "choose a free port with --port" in line


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_mcp_serve_http_refuses_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    line = one_line_error(mcp_http(tmp_path, "--port", port), 2)
    assert f"--port {port}: not a TCP port; choose one from 1 to 65535" in line


def test_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text("async def greet(ctx, name):\n    return name\n")
    proc = tether("serve", "--port", "99999", "--agent", "greet=shop.py:greet",
                  db=tmp_path / "t.db", cwd=tmp_path, check=False)
    assert "--port 99999: not a TCP port" in one_line_error(proc, 2)


@pytest.mark.parametrize("timeout", ["0", "-2", "nan"])
def test_sandbox_run_refuses_a_timeout_that_is_not_positive(tmp_path: Path,
                                                            timeout: str) -> None:
    (tmp_path / "job.py").write_text("print(1)\n")
    proc = tether("sandbox", "run", "job.py", "--timeout", timeout, cwd=tmp_path, check=False)
    assert f"--timeout {timeout}: must be more than 0 seconds" in one_line_error(proc, 2)
    assert proc.stdout == ""


def test_sandbox_run_refuses_a_binary_file(tmp_path: Path) -> None:
    (tmp_path / "billing.db").write_bytes(b"SQLite format 3\x00\x10\x00\x01\x01\xff\xfe")
    proc = tether("sandbox", "run", "billing.db", cwd=tmp_path, check=False)
    line = one_line_error(proc, 2)
    assert "billing.db: not a text file (byte 20 is not UTF-8); sandbox run takes a .py" in line
