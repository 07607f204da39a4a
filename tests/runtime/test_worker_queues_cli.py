"""`tether worker --tenant/--agent/--tenant-limit`: a bad value stops the worker before it
opens the database, with a message naming the flag, the value and what is expected (a typo
would otherwise leave a worker idling on a queue no run is in)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli import app

runner = CliRunner()
HOLD = "tests.runtime.test_worker_queues_processes:hold_slot"


@pytest.mark.parametrize(("args", "message"), [
    (["--tenant", ""], "--tenant: tenant '' in the worker's queue: a tenant is 1-64 letters"),
    (["--tenant", "acme", "--tenant", " acme"], "--tenant: tenant ' acme'"),
    (["--agent", "triage"], "--agent: agent 'triage' in the worker's queue: expected "
     "MODULE:FUNCTION or path/to/file.py:FUNCTION"),
    (["--agent", "nosuch_module_q:main"], "--agent nosuch_module_q:main: this worker cannot "
     "load it (module 'nosuch_module_q' not found"),
    (["--agent", HOLD.replace("hold_slot", "nosuch")], "has no attribute 'nosuch'"),
    (["--tenant-limit", "acme"], "--tenant-limit 'acme': expected TENANT=N, e.g. "
     "--tenant-limit acme=8"),
    (["--tenant-limit", "=3"], "--tenant-limit '=3': expected TENANT=N"),
    (["--tenant-limit", "acme=0"], "--tenant-limit 'acme=0': N must be a whole number of runs, "
     "1 or more"),
    (["--tenant-limit", "acme=two"], "--tenant-limit 'acme=two': N must be a whole number"),
    (["--tenant-limit", "acme=2", "--tenant-limit", "acme=3"], "--tenant-limit: tenant 'acme' "
     "is given twice (2 and 3); give it once"),
])
def test_bad_queue_values_stop_the_worker_before_it_starts(
        tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "never.db"
    result = runner.invoke(app, ["worker", "--db", str(db), *args], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert not db.exists()  # refused before the database was opened (or created)
