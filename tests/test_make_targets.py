"""`make demo` installs what the demo runs on, `make test` everything: a new user's first
command must not wait for a browser, a database server and Node.js that only the tests use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_ONLY = {"chromium", "postgresql", "pgbouncer", "faketime", "git"}
DEMO_NEEDS = {"bubblewrap", "runsc", "python3-venv", "cmake", "build-essential"}


def _apt_packages(target: str) -> set[str]:
    """The Debian packages the dry run of `make TARGET` would install."""
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    lists = re.findall(r"for p in ([^;]*); do dpkg -s", out)
    return {p for found in lists for p in found.split()}


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_the_demo_installs_only_what_it_runs_on() -> None:
    demo = _apt_packages("demo")
    assert demo >= DEMO_NEEDS, DEMO_NEEDS - demo
    assert not demo & TEST_ONLY, demo & TEST_ONLY
    everything = _apt_packages("apt")
    assert everything >= DEMO_NEEDS | TEST_ONLY, (DEMO_NEEDS | TEST_ONLY) - everything
