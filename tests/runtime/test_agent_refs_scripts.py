"""A script that runs its own agents, as the README's first example does: the agent's file is
the script itself, and importing it again to find the agent ran the whole script a second time
(inside the worker's event loop, where its `asyncio.run` failed and left the run waiting)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tether.runtime import AgentNotFound, resolve_agent

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import asyncio
from tether import Tether

async def greet(ctx, name):
    return await ctx.step("greet", lambda: f"Hello, {name}!")

t = Tether("shop.db")
print("script ran")
rec = asyncio.run(t.run(greet, "Ada"))
print(rec.status, rec.result)
'''


def test_a_script_without_a_main_guard_runs_its_agent_once(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "shop.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["script ran", "succeeded Hello, Ada!"], proc.stdout
    with sqlite3.connect(tmp_path / "shop.db") as db:
        assert db.execute("SELECT count(*), max(status) FROM runs").fetchone() == (1, "succeeded")


async def test_another_process_importing_such_a_script_is_told_why_it_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shop.py").write_text(SCRIPT)
    monkeypatch.chdir(tmp_path)  # the script's top level creates its database where it runs
    try:
        resolve_agent(f"{tmp_path / 'shop.py'}:greet")  # here, inside a running event loop
    except AgentNotFound as exc:
        assert "asyncio.run() cannot be called from a running event loop" in str(exc)
        assert 'keep what runs the script (submitting, asyncio.run) under `if __name__ == ' \
               '"__main__":`' in str(exc)
    else:
        raise AssertionError("the script's import should have failed")


EARLY = """
import asyncio
from tether import Tether

t = Tether("early.db")
rec = asyncio.run(t.run("early.py:late", None))
print(rec.status, rec.reason)

async def late(ctx, _):
    return "never reached"
"""


def test_a_script_that_runs_an_agent_defined_below_is_told_to_move_the_call(
        tmp_path: Path) -> None:
    (tmp_path / "early.py").write_text(EARLY)
    proc = subprocess.run([sys.executable, "early.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    out = proc.stdout + proc.stderr
    assert "has no attribute 'late'" in out, out
    assert "it is not defined yet when the script's top level runs it" in out, out
