"""`update_run` keeps the statement it made for a set of columns: a column it may not update is
still refused after other sets were accepted, and each set writes exactly its own columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.store import RunRecord
from tether.store._sqlite import SQLiteStore


def test_update_statements_are_per_column_set(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    store.write(lambda tx: tx.insert_run(RunRecord(id="r1", agent="a:b", status="queued",
                                                   input={"x": 1})))
    store.write(lambda tx: tx.update_run("r1", status="running", reason="go"))
    store.write(lambda tx: tx.update_run("r1", reason="again", status="running"))
    store.write(lambda tx: tx.update_run("r1", status="succeeded", result={"ok": True}))
    for _ in range(2):  # refused before and after the accepted sets were kept
        with pytest.raises(ValueError, match=r"cannot update run columns \['input'\]"):
            store.write(lambda tx: tx.update_run("r1", status="failed", input={"x": 2}))
    run = store.get_run("r1")
    assert run is not None
    assert (run.status, run.reason, run.result, run.input) == (
        "succeeded", "again", {"ok": True}, {"x": 1})
    store.close()
