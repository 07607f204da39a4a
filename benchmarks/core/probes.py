"""Probes of the machine the core benchmarks run on: how loaded it is right now (load average,
an fsync probe), what it is (CPU, memory, kernel, versions, commit) and the filesystem of a path."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

from .config import ROOT


def conditions(work: Path, n: int = 200) -> dict[str, float]:
    """How loaded the machine is right now: load average and the cost of one 4 KB write+fsync
    in the benchmark directory (every durable commit pays at least one)."""
    path = work / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    walls = []
    c0 = time.process_time()
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            walls.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return {"load1": os.getloadavg()[0], "fsync_p50_ms": statistics.median(walls) * 1000,
            "fsync_cpu_us": (time.process_time() - c0) / n * 1e6}

def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "?"
    return {"nproc": str(os.cpu_count()), "cpu": model, "mem": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "commit": commit,
            "tether": metadata.version("tether")}


def fs_of(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind
