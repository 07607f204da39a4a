"""Paths, the reproducing command and the sizes of the core benchmarks (shared by every part)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LG_PYTHON = ROOT / "benchmarks" / ".lg-venv" / "bin" / "python"
LG_SIDE = ROOT / "benchmarks" / "lg_side.py"
RESULT = ROOT / "benchmarks" / "results" / "core.md"
COMMAND = "make bench-core"

CPU_STEPS, CPU_REPEATS = 500, 5
STORAGE_STEPS, STORAGE_MSG = [100, 200, 400, 800], 1024
TP_RUNS, TP_STEPS, TP_SLEEP = 1000, 10, 0.05
RESUME_STEPS, RESUME_REPEATS = 500, 7
# Paired rounds (each: Tether, then LangGraph) on a shared machine whose fsync cost drifts:
# throughput is wall-clock bound; a CPU step is one fsync plus ~60 µs of Python.
ROUNDS = {"throughput": 2, "cpu": 3}
