"""`tether worker --concurrency 0` served forever and executed nothing, silently (the option had
no help text and no bound); now it is refused as bad usage before the database is opened, and
the help says what the number is."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tether.cli import app


def test_a_worker_that_could_execute_nothing_does_not_start(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    result = CliRunner().invoke(app, ["worker", "--concurrency", "0", "--db", str(db)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "--concurrency" in result.output and not db.exists()
    shown = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"}).output
    assert "Runs this worker executes at once" in shown
