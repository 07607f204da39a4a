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

from .cli_support import ROOT, tether


def test_the_demo_journal_outlives_the_demo(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "OPENAI_API_KEY": "",
           "TMPDIR": str(tmp_path)}  # the demo's temporary folder goes under tmp_path
    demo = subprocess.run(  # a model that cannot be reached: the run fails fast, journaled
        [sys.executable, "-m", "tether.demo", "--task", "countries", "--model", "openai:x",
         "--base-url", "http://127.0.0.1:9/v1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 1, demo.stdout + demo.stderr
    said = re.search(r"inspect later: tether show (\S+) --db (\S+)", demo.stdout)
    assert said, demo.stdout
    run_id, db = said[1], Path(said[2])
    assert db.is_relative_to(tmp_path) and db.exists()
    assert f"the journal stays in {db}" in " ".join(demo.stdout.split())
    shown = tether("show", run_id, "--db", str(db), check=False)
    assert shown.returncode == 0 and "status: failed" in shown.stdout, shown.stderr
