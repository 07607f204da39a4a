"""Running `tether` as a user types it: a real subprocess over a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tether(*args: str, db: Path | None = None, check: bool = True, columns: int = 200,
           cwd: Path = ROOT, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    full_env.pop("TETHER_DB", None)
    if db is not None:
        full_env["TETHER_DB"] = str(db)
    full_env["PYTHONPATH"] = str(ROOT)  # the tests' agents import from any cwd
    proc = subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"tether {args} exited {proc.returncode}:\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


def wait_status(db: Path, run_id: str, status: str, timeout: float = 30.0) -> None:
    from tether.store import SQLiteStore

    store = SQLiteStore(db)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            run = store.get_run(run_id)
            if run is not None and run.status == status:
                return
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not reach {status}: {store.get_run(run_id)}")
    finally:
        store.close()
