"""Worker processes for the scale benchmarks (each a `benchmarks.scale.worker_proc`): start them,
wait until every one has opened the store, start them together, collect their reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Fleet:
    """`n` worker processes on one database, each configured by `cfg` (see worker_proc)."""

    def __init__(self, n: int, cfg: dict[str, Any]) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "benchmarks.scale.worker_proc", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
            for _ in range(n)]
        self.ready = [self._line(p) for p in self.procs]

    @staticmethod
    def _line(proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=60)
            raise RuntimeError(f"worker process {proc.pid} exited with {proc.returncode} "
                               "before reporting (its stderr is above)")
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, word: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(word + "\n")
            proc.stdin.flush()

    def reports(self) -> list[dict[str, Any]]:
        """Each process's final report, in start order (waits for them to exit)."""
        out = []
        for proc, ready in zip(self.procs, self.ready, strict=True):
            report = self._line(proc)
            report["baseline_rss_mb"] = ready["rss_mb"]
            out.append(report)
            proc.wait(timeout=120)
        return out

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
