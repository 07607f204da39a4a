"""The agent code tools (through the real tool registry and journal) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether import Tether
from tether.cli import app

from . import agents_sandbox as A

pytestmark = [pytest.mark.sandbox]


async def test_code_tools_share_the_workspace_across_a_replay(tether: Tether) -> None:
    rec = await tether.run(A.uses_code_tools, None)
    assert rec.status == "succeeded", rec
    ok, first, second, third, files = rec.result
    assert ok and first.startswith("wrote ")
    assert second == "4\ntemps.csv\n"
    assert third == "54 3 Oslo,Lima,Pune\n"
    assert files == ["temps.csv"]
    events = tether.events(rec.id)
    assert any(e.kind == "run_resumed" for e in events), "the run was not resumed"
    assert sum(1 for e in events if e.kind == "step_started" and e.name == "tool:python") == 1


def test_cli_sandbox_run_prints_json(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import os\nopen('out.txt', 'w').write('hi')\nprint(sorted(os.listdir()))")
    ws = tmp_path / "ws"
    (ws).mkdir()
    (ws / "in.txt").write_text("x")
    result = CliRunner().invoke(app, ["sandbox", "run", "--timeout", "20", "--workspace",
                                      str(ws), str(script)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["exit_code"] == 0 and data["stdout"] == "['in.txt', 'out.txt']\n"
    assert data["files"]["added"] == ["out.txt"]
    assert (ws / "out.txt").read_text() == "hi"
    assert {"stdout_truncated", "stderr_truncated", "duration_ms", "limits_enforced"} <= set(data)
    assert "cgroup" in data["limits_enforced"]["memory_bytes"] or "rlimit" in (
        data["limits_enforced"]["memory_bytes"])


def test_cli_sandbox_run_bash_on_gvisor_and_timeout(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("echo gvisor-ok\nsleep 30\n")
    result = CliRunner().invoke(app, ["sandbox", "run", "--backend", "gvisor", "--timeout", "1",
                                      str(script)])
    assert result.exit_code == 124, result.output
    data = json.loads(result.output)
    assert data["backend"] == "gvisor" and data["timed_out"] and data["stdout"] == "gvisor-ok\n"


def test_cli_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(1)")
    result = CliRunner().invoke(app, ["sandbox", "run", "--backend", "nope", str(script)])
    assert result.exit_code == 125
    data = json.loads(result.output)
    assert "unavailable" in data["error"] and "bwrap" in data["fix"]


def test_cli_doctor_reports_backends_and_limits() -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_name = {b["backend"]: b for b in data["backends"]}
    assert set(by_name) == {"bwrap", "gvisor"}
    for b in by_name.values():
        assert b["available"] and b["smoke_test"]["ok"], b
        assert b["limits_enforced"]["network"].startswith("none")
    assert "ptrace" in by_name["gvisor"]["platform"]
    assert data["host"]["cgroups"]["memory"] in ("cgroup v1", "cgroup v2",
                                                 "none (rlimit fallback)")
