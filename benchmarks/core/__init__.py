"""The parts of the core benchmark, Tether vs LangGraph (run it with `benchmarks/bench_core.py`).

    config       paths, the command that reproduces the run, and the benchmark sizes
    agents       the agents Tether runs
    messages     the message every node appends, on every side (same bytes as
                 `lg_side.message`; `dbos_side.py` imports it: no Tether import)
    diag         SQLite helpers: an instrumented store, file size after a WAL checkpoint, the
                 `synchronous` Tether opens a file with
    tether_side  Tether's side of the four benchmarks (cpu incl. its breakdown and the bare
                 sqlite3 floor, storage, throughput, resume)
    lg_runner    LangGraph's side: runs `lg_side.py` with the LangGraph venv's interpreter
    probes       the machine (CPU, memory, versions, filesystem) and its load (fsync probe)
    report       the markdown report
    cli          `main` (run, report, write results/core.md) and `--profile`
"""
