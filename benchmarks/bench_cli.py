"""CLI start-up benchmark: how long `tether --help`, `tether runs` and friends take to answer.

Each command is started as a fresh process (what a user waits for), N times after a warm-up,
and the median / p90 / min wall-clock times are written to benchmarks/results/cli.md with the
Python floor (`python -c pass`) and the import floor of the CLI framework (`import typer`, and
pydantic, which typer imports to coerce every command's parameters) for scale. The target is
0.3 s for `tether --help` and `tether runs` on a quiet machine; the load average at the start
and end is recorded, since on a busy machine every figure grows.

With `--baseline DIR` (a checkout of an earlier Tether, e.g. `git worktree add /tmp/before
COMMIT`), every tether command is also timed there, interleaved start by start with this tree so
both meet the same load, and a "before" column is written.

Usage: python benchmarks/bench_cli.py [--n N] [--baseline DIR]   (or `make bench-cli`)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "cli.md"
TARGET_S = 0.3
TARGETED = ("tether --help", "tether runs")
# timed in the baseline checkout too (`--version` is new: a baseline may not have it)
BASELINED = ("tether --help", "tether runs", "tether runs --json", "tether show RUN")


def once(argv: list[str], env: dict[str, str], root: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, env={**env, "PYTHONPATH": str(root)}, cwd=root,
                          capture_output=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{argv} in {root} exited {proc.returncode}: "
                         f"{proc.stderr.decode()[-500:]}")
    return elapsed


def timed(argv: list[str], env: dict[str, str], n: int, roots: list[Path],
          dbs: dict[Path, Path], warmup: int = 2) -> list[list[float]]:
    """Times per root, the roots taking turns start by start."""
    times: list[list[float]] = [[] for _ in roots]
    for i in range(warmup + n):
        for slot, root in enumerate(roots):
            elapsed = once(argv, {**env, "TETHER_DB": str(dbs[root])}, root)
            if i >= warmup:
                times[slot].append(elapsed)
    return times


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def seed_database(path: Path, root: Path, runs: int = 50) -> None:
    """A database as `tether runs` meets it: 50 queued runs, written by the code in `root`
    (the baseline's, when there is one: an older Tether cannot open a newer schema, while the
    newer one migrates its own copy)."""
    code = ("import sys; from tether import Tether; t = Tether(sys.argv[1]); "
            f"t.submit_many('tests.runtime.agents_core:sequential', list(range({runs}))); "
            "t.close()")
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=root, check=True,
                   env={**os.environ, "PYTHONPATH": str(root)})


Results = dict[str, dict[str, list[list[float]]]]  # mode -> command -> times per root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="timed starts per command and mode")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="an earlier checkout to time the same commands in")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        seed_database(db, args.baseline.resolve() if args.baseline else ROOT)
        dbs = {ROOT: db}
        if args.baseline is not None:  # each tree reads its own copy of the same runs
            dbs[args.baseline.resolve()] = Path(tmp) / "baseline.db"
            shutil.copyfile(db, dbs[args.baseline.resolve()])
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        base.update({"COLUMNS": "120"})
        modes = {
            CACHED: {**base, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")},
            UNCACHED: {**base, "PYTHONDONTWRITEBYTECODE": "1",
                       "PYTHONPYCACHEPREFIX": str(Path(tmp) / "empty-pycache")},
        }
        cases = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import typer, pydantic, rich.console'": [
                py, "-c", "import typer, pydantic, rich.console"],
            "tether --version": [py, "-m", "tether", "--version"],
            "tether --help": [py, "-m", "tether", "--help"],
            "tether runs": [py, "-m", "tether", "runs"],
            "tether runs --json": [py, "-m", "tether", "runs", "--json"],
            "tether show RUN": [py, "-m", "tether", "show", _first_run(db)],
        }
        load_before = os.getloadavg()
        results: Results = {mode: {} for mode in modes}
        for mode, env in modes.items():
            for name, argv in cases.items():
                roots = [ROOT] if args.baseline is None or name not in BASELINED else [
                    ROOT, args.baseline.resolve()]
                results[mode][name] = timed(argv, env, args.n, roots, dbs)
        load_after = os.getloadavg()
    write(results, args.n, load_before, load_after, args.baseline)
    print(OUT.read_text())


CACHED = "bytecode cached"
UNCACHED = "compiled each start"


def _first_run(db: Path) -> str:
    from tether.store import SQLiteStore

    store = SQLiteStore(db, must_exist=True)
    try:
        return store.list_runs(limit=1)[0].id
    finally:
        store.close()


def _stats(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} / {p90(times):.3f} / {min(times):.3f}"


def write(results: Results, n: int, load_before: tuple[float, ...],
          load_after: tuple[float, ...], baseline: Path | None) -> None:
    lines = [
        "# CLI start-up",
        "",
        "Wall-clock seconds from starting a `tether` process to its exit (median / p90 / min), "
        f"each command a fresh process, {n} timed starts after 2 warm-ups per mode; 50 runs in "
        "the database. *Bytecode cached*: as installed by pip (modules compiled once). "
        "*Compiled each start*: `PYTHONDONTWRITEBYTECODE=1` with no cache, as in a sandbox "
        "that forbids writing bytecode — every module is compiled from source at every start.",
        "",
        "Reproduce: `make bench-cli` (or `.venv/bin/python benchmarks/bench_cli.py --n "
        f"{n}{' --baseline DIR' if baseline else ''}`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average at start "
        f"{load_before[0]:.2f}, at end {load_after[0]:.2f} (other work shares the CPUs: "
        "above ~1 per CPU every figure grows).",
        "",
        *([f"Before: the same commands in {baseline} (the code before the change), interleaved "
           "start by start with these.", ""] if baseline is not None else []),
        f"| command | {CACHED} | before | {UNCACHED} | before | target ({CACHED}) |",
        "|---|---|---|---|---|---|",
    ]
    for name in results[CACHED]:
        cells = []
        for mode in (CACHED, UNCACHED):
            per_root = results[mode][name]
            cells.append(_stats(per_root[0]))
            cells.append(_stats(per_root[1]) if len(per_root) > 1 else "")
        target = ""
        if name in TARGETED:
            met = statistics.median(results[CACHED][name][0]) <= TARGET_S
            target = f"≤ {TARGET_S} s: {'met' if met else 'NOT met'}"
        lines.append(f"| `{name}` | {' | '.join(cells)} | {target} |")
    lines += [
        "",
        "`python -c 'import typer, pydantic, rich.console'` is the floor any typer 0.29 CLI "
        "pays before its own code: typer coerces every command's parameters through pydantic.",
        "",
    ]
    OUT.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
