"""What `tether worker` logs, as an operator's log pipeline reads it: each record one line on
stderr with its time, level and source (`--log-format text`), or one JSON object
(`--log-format json`) — before, Python printed the bare message only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tether import Context

from .cli_support import ROOT, tether, wait_status

AGENT = '''
async def talks(ctx, _=None):
    ctx.log("charged the card", order="A-17", cents=1200)
    return "done"
'''


async def talks(ctx: Context, _: object = None) -> str:
    ctx.log("charged the card", order="A-17", cents=1200)
    return "done"


def _worker(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TETHER_DB": str(db), "PYTHONPATH": str(ROOT)}
    env.pop("TETHER_LOG_LEVEL", None)
    env.pop("TETHER_LOG_FORMAT", None)
    return subprocess.Popen([sys.executable, "-m", "tether", "worker", "--poll", "0.05", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _stop(worker: subprocess.Popen[str]) -> str:
    worker.terminate()
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    return err


def _serve_two_runs(tmp_path: Path, *args: str) -> tuple[str, str]:
    """A worker's stderr over two runs: one it executes (its agent logs with ctx.log) and one
    whose agent file is gone (a warning); returns (stderr, the lost run's id)."""
    db = tmp_path / "t.db"
    agent_file = tmp_path / "gone.py"
    agent_file.write_text(AGENT)
    lost = tether("run", f"{agent_file}:talks", "--detach", db=db).stdout.strip()
    agent_file.unlink()  # this worker cannot load it: a warning
    good = tether("run", f"{__name__}:talks", "--detach", db=db).stdout.strip()
    worker = _worker(db, *args)
    try:
        wait_status(db, good, "succeeded")
        wait_status(db, lost, "waiting")
        time.sleep(0.3)
    finally:
        err = _stop(worker)
    return err, lost


def test_json_logs_are_one_object_per_line_with_level_source_and_agent_fields(
        tmp_path: Path) -> None:
    err, lost = _serve_two_runs(tmp_path, "--log-format", "json", "--log-level", "info")
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert records, err
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]), r
        assert r["level"] in ("INFO", "WARNING") and r["logger"].startswith("tether"), r
    warned = [r for r in records if r["level"] == "WARNING" and lost in r["message"]]
    assert warned and "cannot load the run's agent" in warned[0]["message"], records
    said = [r for r in records if "charged the card" in r["message"]]
    assert said and said[0]["fields"] == {"order": "A-17", "cents": 1200}, records


def test_text_logs_carry_time_level_and_source_and_info_is_off_by_default(
        tmp_path: Path) -> None:
    err, lost = _serve_two_runs(tmp_path)
    line = next(ln for ln in err.splitlines() if lost in ln)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING tether\.worker: ", line), line
    assert "charged the card" not in err  # ctx.log lines are info: in the journal, not here


def test_a_bad_log_format_is_a_usage_error_before_anything_starts(tmp_path: Path) -> None:
    proc = tether("worker", "--log-format", "xml", db=tmp_path / "t.db", check=False)
    assert proc.returncode == 2
    assert "--log-format 'xml': use one of text, json" in proc.stderr
    assert not (tmp_path / "t.db").exists()


def test_mcp_serve_takes_the_same_log_options(tmp_path: Path) -> None:
    proc = tether("mcp", "serve", "--tools", "tests.server.mcp_support:TOOLS", "--no-policy",
                  "--log-level", "loud", db=tmp_path / "t.db", check=False)
    assert proc.returncode == 2
    assert "--log-level 'loud': use one of debug, info, warning, error" in proc.stderr
