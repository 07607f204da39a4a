"""Issue 17 §8: a run id may be given by its first characters everywhere, and is never cut.

Before: `tether show` wanted the whole id and `tether runs` at 80 columns printed `r3f2…`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tether import Tether
from tether.runtime.client import AmbiguousRunId, NoRunWithPrefix

from .cli_support import tether

AGENT = "tests.runtime.agents_core:waits_then_steps"




@pytest.fixture
def three_waiting(tmp_path: Path) -> tuple[Path, list[str]]:
    db = tmp_path / "ids.db"
    t = Tether(db)
    ids = [t.submit(AGENT, {}, run_id=rid) for rid in ("rab12", "rab34", "rcd56")]
    for rid in ids:
        asyncio.run(t.drive(rid))
    t.close()
    return db, ids


def test_library_resolves_unique_prefixes(three_waiting: tuple[Path, list[str]]) -> None:
    db, _ = three_waiting
    t = Tether(db)
    assert t.resolve_run_id("rab12") == "rab12"  # a whole id is itself
    assert t.resolve_run_id("rc") == "rcd56"
    assert t.resolve_run_id("rab3") == "rab34"
    with pytest.raises(AmbiguousRunId) as amb:
        t.resolve_run_id("rab")
    assert amb.value.candidates == ["rab12", "rab34"]
    assert "rab12" in str(amb.value) and "rab34" in str(amb.value)
    with pytest.raises(NoRunWithPrefix, match="nor one starting with it"):
        t.resolve_run_id("rzz")


@pytest.mark.parametrize("hostile", ["r%", "r_", "%", "_b12", "rab1%", "r*", "R", "rAB"])
def test_prefix_wildcards_are_plain_characters(three_waiting: tuple[Path, list[str]],
                                               hostile: str) -> None:
    """SQL LIKE wildcards in a prefix must not match anything: they are not in any id."""
    db, _ = three_waiting
    with pytest.raises(NoRunWithPrefix):
        Tether(db).resolve_run_id(hostile)


def test_ambiguity_lists_at_most_ten_candidates(tmp_path: Path) -> None:
    t = Tether(tmp_path / "many.db")
    for i in range(12):
        t.submit(AGENT, {}, run_id=f"rx{i:02d}")
    with pytest.raises(AmbiguousRunId) as amb:
        t.resolve_run_id("rx")
    assert len(amb.value.candidates) == 10 and "and more" in str(amb.value)


def test_show_signal_cancel_take_prefixes(three_waiting: tuple[Path, list[str]]) -> None:
    db, _ = three_waiting
    shown = json.loads(tether("show", "rc", "--json", db=db).stdout)
    assert shown["run"]["id"] == "rcd56"
    out = tether("signal", "rab3", "go", db=db).stdout
    assert "delivered to rab34" in out
    assert "cancelled 1 run(s): rcd56" in tether("cancel", "rcd", db=db).stdout


@pytest.mark.parametrize("command", [["show", "rab"], ["signal", "rab", "go"], ["cancel", "rab"],
                                     ["resolve", "rab", "--retry"]])
def test_an_ambiguous_prefix_names_the_candidates(three_waiting: tuple[Path, list[str]],
                                                  command: list[str]) -> None:
    db, _ = three_waiting
    proc = tether(*command, db=db, check=False)
    assert proc.returncode == 1
    assert "ambiguous" in proc.stderr and "rab12" in proc.stderr and "rab34" in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing was done to either candidate
    runs = {r["id"]: r for r in json.loads(tether("runs", "--json", db=db).stdout)}
    assert runs["rab12"]["status"] == runs["rab34"]["status"] == "waiting"


def test_a_prefix_matching_nothing_says_so(three_waiting: tuple[Path, list[str]]) -> None:
    db, _ = three_waiting
    proc = tether("show", "rzz", db=db, check=False)
    assert proc.returncode == 1 and "no run with id 'rzz' (nor one starting with it)" in proc.stderr


def test_runs_never_truncates_ids_at_80_columns(tmp_path: Path) -> None:
    db = tmp_path / "narrow.db"
    t = Tether(db)
    ids = [t.submit(AGENT, {"timeout": 3600}) for _ in range(3)]
    for rid in ids:
        asyncio.run(t.drive(rid))  # long reasons ("waiting for signal 'go'") in the last column
    for columns in (80, 60):
        out = tether("runs", db=db, columns=columns).stdout
        for rid in ids:
            assert rid in out, f"{rid} cut at {columns} columns:\n{out}"
        # and every id prefix the user copies from the table works
        assert tether("show", ids[0][:8], "--json", db=db, columns=columns).returncode == 0


def test_a_parents_prefix_names_the_parent_not_its_children(tmp_path: Path) -> None:
    """A child's id is its parent's id + `.KEY`, so the first characters of a parent's id are
    also those of every descendant's. Before: `tether show r3f2` of a run with children was
    "ambiguous" (seen with `tether trace`), and only the whole id worked."""
    db = tmp_path / "tree.db"
    t = Tether(db)
    parent = t.submit("tests.runtime.agents_core:tree_parent", None, run_id="rtree1")
    other = t.submit(AGENT, {}, run_id="rtwig2")
    for rid in (parent, other):
        asyncio.run(t.drive(rid))
    children = [r.id for r in t.runs() if r.id.startswith(parent + ".")]
    assert len(children) == 3, children
    assert t.resolve_run_id("rtr") == parent
    assert t.resolve_run_id("rtree") == parent
    assert t.resolve_run_id(children[0]) == children[0]  # a whole child id is itself
    with pytest.raises(AmbiguousRunId) as amb:  # two roots still are ambiguous...
        t.resolve_run_id("rt")
    assert amb.value.candidates == [parent, other]  # ...and the children are not listed
    with pytest.raises(AmbiguousRunId):  # the prefix of the children only: any of them
        t.resolve_run_id(parent + ".")
    t.close()
    out = tether("show", "rtr", "--json", db=db)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["run"]["id"] == parent
