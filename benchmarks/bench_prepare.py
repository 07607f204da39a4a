"""What not preparing statements costs the PostgreSQL path (docs/scaling.md, "Behind a
connection pooler"): 2000 small journal writes through `PostgresStore` on a server of its own,
with psycopg's threshold (5) and never prepared, in alternating rounds. Each write is a
SELECT (next_seq), an INSERT (an event), an UPDATE (the run) and an upsert (usage), one
transaction. Prints wall time per write and the server backend's CPU per write (from /proc:
the server does the parsing and planning that preparing saves).

    .venv/bin/python benchmarks/bench_prepare.py      # N=2000 ROUNDS=5 by default
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.store.pg_private import PrivatePg
from tether.store._postgres import PostgresStore
from tether.store._postgres_prepare import Setting
from tether.store._postgres_tx import _PostgresTx
from tether.store._records import NewEvent

N = int(os.environ.get("N", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the server process `pid` used so far (user + system)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(url: str, setting: Setting, run: str) -> tuple[float, float]:
    """µs of wall time and of server CPU per write, one store on one session."""
    store = PostgresStore(url, prepare_threshold=setting, max_size=1)
    try:
        pid = int(store._query("SELECT pg_backend_pid()")[0][0])

        def write(tx: _PostgresTx, i: int) -> None:
            seq = tx.next_seq(run)
            tx.append_events(run, [NewEvent(seq, "step", f"k{i}", "s", b'{"v":1}', 0.0)])
            tx.update_run(run, status="running")
            tx.add_usage("t", "2026-01-01", {"steps": 1.0})

        for i in range(50):  # warm up: psycopg prepares here when it may
            store.write(partial(write, i=i))
        cpu, wall = backend_cpu(pid), time.perf_counter()
        for i in range(50, 50 + N):
            store.write(partial(write, i=i))
        return (time.perf_counter() - wall) / N * 1e6, (backend_cpu(pid) - cpu) / N * 1e6
    finally:
        store.close()


def main() -> None:
    pg = PrivatePg()
    try:
        url = pg.url(pg.new_database())
        PostgresStore(url).close()  # migrated once
        rounds: dict[Setting, list[tuple[float, float]]] = {5: [], None: []}
        for r in range(ROUNDS):
            for setting, found in rounds.items():
                found.append(one_round(url, setting, f"bench-{r}-{setting}"))
        for setting, found in rounds.items():
            print(f"prepare_threshold={setting}: {N} writes x {ROUNDS} rounds, median "
                  f"{statistics.median(w for w, _ in found):.0f} µs/write wall, "
                  f"{statistics.median(c for _, c in found):.0f} µs/write server CPU")
    finally:
        pg.close()


if __name__ == "__main__":
    main()
