"""LangGraph's side of the core benchmarks: `lg_side.py` run by the interpreter of the
LangGraph-only venv `benchmarks/.lg-venv` (Tether never imports LangGraph), exchanging JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import (
    CPU_REPEATS,
    CPU_STEPS,
    LG_PYTHON,
    LG_SIDE,
    RESUME_REPEATS,
    RESUME_STEPS,
    ROOT,
    STORAGE_MSG,
    STORAGE_STEPS,
    TP_RUNS,
    TP_SLEEP,
    TP_STEPS,
)


def lg(bench: str, params: dict[str, Any]) -> dict[str, Any]:
    if not LG_PYTHON.exists():
        sys.exit(f"{LG_PYTHON} is missing: run `make bench-core` (it creates the LangGraph venv)")
    proc = subprocess.run([str(LG_PYTHON), str(LG_SIDE), bench, json.dumps(params)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"LangGraph side of {bench!r} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def lg_params(bench: str, work: Path) -> dict[str, Any]:
    d = str(work)
    params: dict[str, dict[str, Any]] = {
        "cpu": {"dir": d, "steps": CPU_STEPS, "size": 0, "repeats": CPU_REPEATS},
        "storage": {"dir": d, "steps": STORAGE_STEPS, "size": STORAGE_MSG},
        "throughput": {"dir": d, "runs": TP_RUNS, "steps": TP_STEPS, "size": 0,
                       "sleep": TP_SLEEP},
        "resume": {"dir": d, "steps": RESUME_STEPS, "size": 0, "repeats": RESUME_REPEATS},
    }
    return {**params[bench], "state": "messages"}  # LangGraph's MessagesState (see lg_side.py)
