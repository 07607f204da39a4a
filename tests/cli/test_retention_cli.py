"""`tether delete` and `tether prune` as a user (or a cron job) types them: they never delete
without being told to, say what they deleted, and refuse clearly what they may not delete."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.store.pg_support import raw_sql
from tether import RunNotFound, Tether

from .cli_support import ROOT, tether

PARENT = "tests.runtime.test_retention:family"


def _finished_trees(db: Path, n: int) -> list[str]:
    t = Tether(db)
    try:
        roots = []
        for _ in range(n):
            run_id = t.submit(PARENT, {"kids": 1})
            assert asyncio.run(t.drive(run_id)).status == "succeeded"
            roots.append(run_id)
        return roots
    finally:
        t.close()


def _exists(db: Path, run_id: str) -> bool:
    t = Tether(db)
    try:
        t.get(run_id)
        return True
    except RunNotFound:
        return False
    finally:
        t.close()


def test_prune_needs_yes_or_dry_run_and_deletes_only_old_trees(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    old, recent = _finished_trees(db, 2)
    t = Tether(db)
    raw_sql(t.store, "UPDATE runs SET updated_at = updated_at - 40 * 86400 WHERE id=?", (old,))
    t.close()

    refused = tether("prune", "--before", "30d", db=db, check=False)
    assert refused.returncode == 2 and "add --yes to delete, or --dry-run" in refused.stderr
    dry = tether("prune", "--before", "30d", "--dry-run", db=db)
    assert "would delete 1 run tree(s), 3 run(s)" in dry.stdout
    assert _exists(db, old)
    bad = tether("prune", "--before", "last tuesday", "--yes", db=db, check=False)
    assert bad.returncode == 2 and "--before 'last tuesday' is neither a duration nor a date" \
        in bad.stderr
    future = tether("prune", "--before", "2999-01-01", "--yes", db=db, check=False)
    assert future.returncode == 2 and "is in the future" in future.stderr
    unfinished = tether("prune", "--before", "30d", "--status", "waiting", "--yes", db=db,
                        check=False)
    assert unfinished.returncode == 2 and "only finished runs are pruned" in unfinished.stderr

    done = tether("prune", "--before", "30d", "--yes", db=db)
    assert "deleted 1 run tree(s), 3 run(s)" in done.stdout
    assert not _exists(db, old) and _exists(db, recent)


def test_delete_asks_refuses_children_and_deletes_a_tree(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    (root,) = _finished_trees(db, 1)
    child = f"{root}.1"
    assert _exists(db, child)

    said_no = subprocess.run([sys.executable, "-m", "tether", "delete", root, "--db", str(db)],
                             input="n\n", capture_output=True, text=True, timeout=120,
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert said_no.returncode == 1 and "nothing deleted" in said_no.stderr
    assert _exists(db, root)

    refused = tether("delete", child, "--yes", db=db, check=False)
    assert refused.returncode == 1 and "is a child of run" in refused.stderr
    assert "Traceback" not in refused.stderr

    done = tether("delete", root[:8], "--yes", db=db)  # a prefix, as everywhere
    assert "deleted 3 run(s)" in done.stdout and root in done.stdout
    assert not _exists(db, root) and not _exists(db, child)
