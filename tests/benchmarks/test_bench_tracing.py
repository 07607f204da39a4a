"""`make bench-tracing` at a toy size, so the script cannot rot: both model steps (the scripted
model and the OpenAI-compatible HTTP client against the driver's local chat server) run traced
and untraced, every span reaches the collector, and the results file renders one table and
verdict per model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # measured processes, a collector and a chat server


def test_both_model_steps_are_measured_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "tracing.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_tracing.py", "--rounds", "1", "--iterations", "20",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "scripted model" in text and "OpenAI-compatible HTTP client" in text
    assert text.count("| round | order | off: CPU/step | on: CPU/step | on/off |") == 2
    assert "Every traced round's exporter reported all 41 spans" in text  # 20 x 2 + the run's
    assert "make bench-tracing" in text or "bench_tracing.py" in text
