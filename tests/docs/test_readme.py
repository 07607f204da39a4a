"""The README's code is executed, so it cannot drift from the library."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tether import Tether
from tether.runtime import resolve_agent

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_every_python_block_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        compile(block, "README.md", "exec")


async def test_the_durable_agent_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    example = tmp_path / "billing_example.py"
    example.write_text(python_blocks()[0])
    resolve_agent(f"{example}:billing")  # importing it submits the run, as the README shows
    tether = Tether(os.path.join(tmp_path, "billing.db"))
    (run,) = tether.runs()
    first = await tether.drive(run.id)
    assert first.status == "waiting" and "signal 'approved'" in (first.reason or "")
    tether.signal(run.id, "approved", {"by": "ann"})
    second = await tether.drive(run.id)
    assert second.status == "waiting" and second.wake_at is not None  # the one-hour timer
    kinds = [e.kind for e in tether.events(run.id)]
    assert kinds.count("step_completed") == 1 and "timer_started" in kinds
