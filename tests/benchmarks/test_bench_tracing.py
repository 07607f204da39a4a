"""`make bench-tracing` at a toy size, so the script cannot rot: both model steps (the scripted
model and the OpenAI-compatible HTTP client against the driver's local chat server) run traced
and untraced, interleaved in one process and in separate processes side by side, every span
reaches the collector, and the results file renders one table and verdict per model."""

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
        [sys.executable, "benchmarks/bench_tracing.py", "--rounds", "2", "--blocks", "2",
         "--iterations", "20", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "scripted model" in text and "OpenAI-compatible HTTP client" in text
    assert text.count("| round | order | off: CPU/step | on: CPU/step | on/off |") == 2
    assert text.count("| 2 pairs of runs in one process |") == 4  # 2 rounds, 2 models
    assert text.count("the 4 pairs' on/off ratios") == 2
    assert "95% confidence interval of that median" in text
    assert "Every traced run's exporter reported all 41 spans" in text  # 20 x 2 + the run's
    assert "`LiveExport.force_flush`" in text
    assert "bench_tracing.py --rounds 2 --blocks 2 --iterations 20" in text


def test_separate_processes_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "tracing.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_tracing.py", "--pairing", "together", "--rounds", "1",
         "--iterations", "20", "--model", "scripted", "--out", str(out)], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "| 1 | side by side |" in text and "the 1 pairs' on/off ratios" in text
    assert "the variables unset (the OpenTelemetry SDK is not imported)" in text
    assert "Every traced run's exporter reported all 41 spans" in text
