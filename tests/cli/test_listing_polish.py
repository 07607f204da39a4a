"""Listings in an 80-column terminal (or piped: rich then assumes 80), as a new user saw them.

Before: `tether runs` cut the agent reference mid-word (`/tmp/fh/w/b` / `illing.py:b` /
`illing`) and `tether stats` cut headers and notes (`P(succe` / `ss)`, `refuse` / `d`,
`execution` / `_error`), because every column but the id was folded a character at a time;
`tether runs --limit 0` said "no runs in DB" of a database holding runs, and `--limit -1` was
taken."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.observe import test_kpis_support as S

from .cli_support import tether

AGENT = '''
async def billing(ctx, goal):
    await ctx.step("look-up", lambda: {"invoice": goal})
    raise RuntimeError("the invoice service refused the request: customer account "
                       "suspended pending review by finance (ticket FIN-20931)")


async def ledger(ctx, goal):
    return {"posted": goal}
'''


def whole(words: list[str], out: str) -> Counter[str]:
    """The words (each as often as given) that the output does not show whole."""
    return Counter(words) - Counter(out.split())


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("w")
    (work / "billing.py").write_text(AGENT)
    db = work / "t.db"
    tether("run", "billing.py:billing", "--input", '"INV-7"', "--quiet", db=db, cwd=work,
           check=False)
    tether("run", "billing.py:ledger", "--input", '"INV-8"', "--quiet", db=db, cwd=work)
    return work, db


@pytest.mark.parametrize("columns", [80, 100, 60])
def test_runs_never_cuts_a_word(runs_db: tuple[Path, Path], columns: int) -> None:
    work, db = runs_db
    records = json.loads(tether("runs", "--json", db=db, cwd=work).stdout)
    assert len(records) == 2 and records[1]["error"]  # billing failed with its error
    out = tether("runs", db=db, cwd=work, columns=columns).stdout
    words = [w for r in records for field in ("id", "agent", "status", "tenant", "error")
             for w in str(r[field] or "").split()]
    assert not whole(words, out), out
    assert all(len(line) <= columns for line in out.splitlines()), out
    assert f"{work}/billing.py:billing" in out.split()


def test_runs_keeps_a_table_where_every_word_fits(runs_db: tuple[Path, Path]) -> None:
    work, db = runs_db
    lines = tether("runs", db=db, cwd=work, columns=250).stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["run", "agent", "status"]
    assert "ticket FIN-20931)" in lines[2]


@pytest.fixture(scope="module")
def stats_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("stats") / "tether.db"
    asyncio.run(S.build(str(db)))
    return db


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_stats_never_cuts_a_word(stats_db: Path, columns: int) -> None:
    out = tether("stats", db=stats_db, columns=columns).stdout
    words = ["P(success)", "refused", "errors", "calls", "drop_table", "execution_error",
             "policy", "100.0%", "28,080", "$0.0070", "elsewhere", "answer", "shop", "budget"]
    assert not whole(words, out), out
    assert all(len(line.rstrip()) <= columns for line in out.splitlines()), out
    for tool, calls in (("drop_table", "1"), ("flaky", "1"), ("lookup", "5")):
        assert tool in out.split() and calls in out.split()


def test_stats_wide_is_still_one_row_per_tool(stats_db: Path) -> None:
    out = tether("stats", db=stats_db, columns=160).stdout
    flaky = next(line for line in out.splitlines() if line.strip().startswith("flaky"))
    assert flaky.split()[:6] == ["flaky", "1", "0", "1", "0", "0.0%"]
    assert flaky.rstrip().endswith("1 execution_error")


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_runs_refuses_a_limit_below_one(runs_db: tuple[Path, Path], limit: str) -> None:
    work, db = runs_db
    proc = tether("runs", "--limit", limit, db=db, cwd=work, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--limit" in proc.stderr and "no runs" not in proc.stdout
    assert len(json.loads(tether("runs", "--limit", "1", "--json", db=db, cwd=work).stdout)) == 1
