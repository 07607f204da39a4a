"""Tether's side of `make bench-core`, at toy sizes: the benchmark agents still run, journal what
the report says they journal, and fail loudly on a bad message kind. (LangGraph's side needs the
benchmark venv and is exercised by `make bench-core` only.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchmarks.core.agents import new_message
from benchmarks.core.tether_side import sqlite_floor, tether_cpu, tether_resume, tether_storage
from tether import Message


def test_message_kinds_carry_the_same_content() -> None:
    as_message = new_message("message", "a", 3, 40)
    as_dict = new_message("dict", "a", 3, 40)
    assert Message.model_validate(as_message).content == as_dict["content"]
    assert len(as_dict["content"]) == 40 and as_dict["content"].startswith("node a, step 3")
    with pytest.raises(ValueError, match="unknown message kind 'aimessage'"):
        new_message("aimessage", "a", 0, 0)


@pytest.mark.parametrize("kind", ["message", "dict"])
async def test_cpu_side_runs_one_durable_step_per_node(tmp_path: Path, kind: str) -> None:
    result = await tether_cpu(tmp_path, steps=6, repeats=2, kind=kind)
    assert result["events_per_run"] == 2 * 6 + 3  # started+completed per step; run events
    assert result["synchronous"] == 2  # FULL: every commit fsynced
    assert len(result["cpu_s"]) == 2 and result["cpu_per_step_ms"] > 0
    conn = sqlite3.connect(tmp_path / f"cpu-{kind}-0.db")
    data = conn.execute("SELECT data FROM events WHERE kind='step_completed' LIMIT 1").fetchone()
    expected = set(Message.model_fields) if kind == "message" else {"role", "content"}
    assert set(json.loads(data[0])) == expected


async def test_storage_side_reports_sizes_that_grow_with_steps(tmp_path: Path) -> None:
    result = await tether_storage(tmp_path, steps_list=[4, 16], size=1024)
    assert 0 < result["bytes"]["4"] < result["bytes"]["16"]


async def test_resume_side_replays_before_going_live(tmp_path: Path) -> None:
    result = await tether_resume(tmp_path, steps=5, repeats=2)
    assert result["journal_events"] == 2 * 5 + 3  # steps, run start, the wait
    assert len(result["claim_to_live_s"]) == 2


def test_sqlite_floor_measures_a_positive_cost(tmp_path: Path) -> None:
    assert sqlite_floor(tmp_path, "NORMAL", commits=20) > 0
