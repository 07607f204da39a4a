"""Core runtime benchmarks: Tether vs LangGraph 1.2 (SQLite checkpointer, durability="sync").

Both systems run in ONE invocation of this script, one after the other on the same machine and the
same filesystem: Tether in this process, LangGraph as a subprocess with the interpreter of the
benchmark venv `benchmarks/.lg-venv` (see `lg_side.py`; created by `make bench-core`), exchanging
JSON. Tether never imports LangGraph.

    make bench-core                       # creates .venv and benchmarks/.lg-venv, then runs this
    .venv/bin/python benchmarks/bench_core.py [--only cpu,storage,throughput,resume]
    .venv/bin/python benchmarks/bench_core.py --profile cpu|throughput|resume   # cProfile Tether

Writes `benchmarks/results/core.md` (unless --only/--profile is given, which print to stdout).

Messages are each side's chat-message type: LangGraph's `MessagesState` (AIMessage objects),
Tether's `Message` (plain dicts on both sides in the extra row 1c).

1. cpu         2-node cycle (a <-> b), one message appended per node, 500 node executions:
               process CPU time (all threads) per durable step.       target: Tether <= 1/10 of LG
2. storage     database size after 100/200/400/800 steps with 1 KB messages, after a WAL
               checkpoint(TRUNCATE).                                   target: linear, <= 2 MB @800
3. throughput  1,000 concurrent runs x 10 steps, each step a 50 ms simulated model call.
               target: Tether steps/s >= 10x LG
4. resume      a run with a ~1,000-event journal (500 steps) waiting for a signal: time from the
               worker claiming it to the agent being live again (journal loaded and replayed).
               target: p50 <= 50 ms

This file is the entry point; the parts live in `benchmarks/core/` (agents, Tether's side, the
LangGraph runner, machine probes, the report, main/profile: see its `__init__.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, sys.path[0] is benchmarks/: import the parts
# as `benchmarks.core` (the agents' references name that module)

from benchmarks.core.cli import main  # noqa: E402

if __name__ == "__main__":
    main((__doc__ or "").split("\n")[0])
