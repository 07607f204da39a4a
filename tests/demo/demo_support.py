"""`python -m tether.demo` as the user runs it: a real process, from the repository, with no
OpenAI key in its environment (so a test can never reach a real provider by accident)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160", "OPENAI_API_KEY": ""}
    return subprocess.run([sys.executable, "-m", "tether.demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
