"""What the scale benchmarks' reports state about the machine (`bench_dbos.py`,
`bench_scale.py`): how loaded it was over the whole run, what it is, and the software measured.
One wording for both reports, so their figures are read against the same facts.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.probes import conditions


def arguments() -> str:
    """This script's arguments as the report's reproduce command appends them: "" or " --runs
    20"."""
    argv = " ".join(sys.argv[1:])
    return f" {argv}" if argv else ""


def load_average() -> str:
    """The three load averages as `uptime` prints them: read before and after a whole run (the
    machine is shared with other jobs; the report says how much)."""
    return "load average " + ", ".join(Path("/proc/loadavg").read_text().split(" ", 3)[:3])


@dataclass
class Session:
    """One whole benchmark run: its scratch directory, the machine's conditions at the start
    (fsync cost), the load averages before and after, and its wall time."""

    work: Path
    cond: dict[str, float]
    uptimes: list[str]
    started: float
    total_s: float = field(default=0.0)


@contextlib.contextmanager
def session(prefix: str) -> Iterator[Session]:
    """A run in a scratch directory (removed afterwards); `uptimes` and `total_s` are complete
    once the block ends."""
    before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        run = Session(work, conditions(work), [before], started)
        yield run
    run.uptimes.append(load_average())
    run.total_s = time.perf_counter() - started


def machine_facts(m: dict[str, str], cond: dict[str, float], uptimes: Sequence[str]) -> str:
    """The report's machine sentence (`m`: core.probes.machine(); `uptimes`: before, after)."""
    return (f"Machine: nproc {m['nproc']}, CPU `{m['cpu']}`, {m['mem']} RAM, Linux {m['kernel']}, "
            f"shared with other jobs: `uptime` before/after: `{uptimes[0]}` / `{uptimes[1]}`; "
            f"4 KB fsync p50 {cond['fsync_p50_ms']:.2f} ms at the start.")


def versions(m: dict[str, str]) -> str:
    """Tether's version and commit, Python's and SQLite's (`m`: core.probes.machine())."""
    return (f"Tether {m['tether']} (commit {m['commit']}), Python {m['python']}, "
            f"SQLite {m['sqlite']}")
