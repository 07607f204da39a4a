"""Fixtures for sandbox tests: real bubblewrap and real runsc, no stand-ins."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tether.sandbox import ExecOutput, Limits, Sandbox

BACKENDS = ("bwrap", "gvisor")
# small limits so hostile programs hit them fast
TEST_LIMITS = Limits(
    cpu_seconds=5,
    memory_bytes=256 * 1024 * 1024,
    pids=256,
    file_size_bytes=16 * 1024 * 1024,
    tmp_bytes=16 * 1024 * 1024,
    workspace_bytes=32 * 1024 * 1024,
    stdout_bytes=64 * 1024,
    stderr_bytes=64 * 1024,
)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[dict[str, Sandbox]]:
    boxes = {name: Sandbox(name, limits=TEST_LIMITS) for name in BACKENDS}
    yield boxes
    for sb in boxes.values():
        sb.close()


@pytest.fixture
def sb(sandboxes: dict[str, Sandbox], backend: str) -> Sandbox:
    return sandboxes[backend]


def run_json(sb: Sandbox, code: str, **kw: Any) -> tuple[Any, ExecOutput]:
    """Run code whose last stdout line is JSON; return it parsed (None if absent)."""
    out = sb.run(code, **kw)
    lines = out.result.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None, out
    except ValueError:
        return None, out


def host_pids_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found
