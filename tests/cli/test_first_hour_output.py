"""What a newcomer reads in an ordinary terminal (80 columns) or in a file the output was piped
to (rich's default width, 80, when stdout is not a terminal).

Before: `tether run` and `tether show` drew the journal as a table some 100-120 columns wide and
rich cut its right side off at 80 — the detail column ("never cut", docs/cli.md) and the totals
under it (`… 0 too`); and `tether --help` / `tether retry --help` kept the line breaks of the
source's docstrings, so the descriptions came out ragged ("replay (they" / "are not executed
again)"), and a run waiting for a signal named it without saying how to send it."""

from __future__ import annotations

from pathlib import Path

from .cli_support import tether

AGENT = '''
async def refund(ctx, order):
    await ctx.step("look-up", lambda: {"order": order, "status": "delivered", "amount": 42})
    decision = await ctx.wait_for("approved")
    return {"order": order, "refunded_by": decision["by"]}
'''


def test_a_narrow_console_gets_every_event_whole(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(AGENT)
    db = tmp_path / "t.db"
    run = tether("run", "shop.py:refund", "--input", '"A-17"', "--quiet", db=db, cwd=tmp_path,
                 columns=80)
    out = run.stdout
    assert "guard decisions: none" in out  # the totals, whole
    assert '· {"order": "A-17", "status": "delivered", "amount": 42}' in out
    assert "signal_waiting  approved · waiting for signal 'approved'" in out
    assert "waiting: waiting for signal 'approved'" in out

    run_id = out.split("journal of run ")[1].split()[0]
    shown = tether("show", run_id[:6], db=db, cwd=tmp_path, columns=80).stdout
    assert "guard decisions: none" in shown and "step_completed  look-up" in shown
    assert f"send it: tether signal {run_id} approved 'JSON'" in shown  # what to do next

    wide = tether("show", run_id, db=db, cwd=tmp_path, columns=200).stdout
    assert "┃ seq ┃" in wide and "guard decisions: none" in wide  # room enough: the table


def test_help_texts_flow_instead_of_keeping_the_sources_line_breaks() -> None:
    listing = " ".join(tether("--help", columns=200).stdout.split("│"))
    assert "The steps that worked replay (they are not executed again)" in " ".join(
        listing.split())
    retry = tether("retry", "--help", columns=200).stdout
    assert "a cancelled, succeeded or live run cannot." in retry


def test_no_runs_says_so_with_the_filters(tmp_path: Path) -> None:
    """Before: an empty result was the header line alone (`run  agent  status …`)."""
    from tether import Tether

    db = tmp_path / "t.db"
    Tether(str(db)).close()
    out = tether("runs", "--status", "cancelled", "--tenant", "acme", db=db).stdout
    assert "no runs matching --status cancelled --tenant acme in sqlite:///" in out
    assert "reason / error" not in out


def test_a_failed_run_names_itself_in_the_traceback_hint(tmp_path: Path) -> None:
    """Before: `traceback stored: tether show RUN --full`, RUN left for the reader to fill in;
    and the error (like a waiting run's reason, which may hold the command to type) was broken
    into 80-column lines, a newline in the middle of what one copies."""
    (tmp_path / "boom.py").write_text(
        "async def boom(ctx, x):\n    raise ValueError('the payment service said ' * 5)\n")
    db = tmp_path / "t.db"
    run = tether("run", "boom.py:boom", "--input", "1", "--quiet", db=db, cwd=tmp_path,
                 check=False, columns=80)
    assert run.returncode == 1
    run_id = run.stdout.split("journal of run ")[1].split()[0]
    assert f"traceback stored: tether show {run_id} --full" in run.stdout
    assert "error: ValueError: " + "the payment service said " * 4 in run.stdout
