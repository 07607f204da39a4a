"""`make demo` without `--db` ends each task with "inspect later: tether show RUN --db
/tmp/tether-demo-…/demo.db", and that command must work afterwards. Before: the demo's temporary
folder was deleted when it exited, so the command it had just printed failed ("database … does
not exist")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .cli_support import ROOT


def test_the_demo_journal_outlives_the_demo(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "OPENAI_API_KEY": "",
           "TMPDIR": str(tmp_path)}  # the demo's temporary folder goes under tmp_path
    demo = subprocess.run(  # a model that cannot be reached: the run fails fast, journaled
        [sys.executable, "-m", "tether.demo", "--task", "countries", "--model", "openai:x",
         "--base-url", "http://127.0.0.1:9/v1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 1, demo.stdout + demo.stderr
    said = re.search(r"inspect later: (\S*tether) show (\S+) --db (\S+)", demo.stdout)
    assert said, demo.stdout
    command, run_id, db = said[1], said[2], Path(said[3])
    assert db.is_relative_to(tmp_path) and db.exists()
    assert f"the journal stays in {db}" in " ".join(demo.stdout.split())
    # the command as printed works from the user's shell (`tether` alone when it is on PATH)
    shown = subprocess.run([command, "show", run_id, "--db", str(db)], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "PATH": os.environ.get(
                               "PATH", "") if command == "tether" else "/usr/bin:/bin"})
    assert shown.returncode == 0 and "status: failed" in shown.stdout, shown.stderr
