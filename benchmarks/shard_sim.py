"""Sharding simulation (issue 18): 1M runs in realistic trees placed on N shards by the real
`tether.store.ShardMap`, and the arithmetic of a million agents on N PostgreSQL primaries.

    make bench-shards
    .venv/bin/python benchmarks/shard_sim.py [--runs 1000000] [--shards 4,8,16,32] [--seed 18]

Workload: root runs ("r" + 15 hex digits, as `new_run_id` makes them); 90% are alone, 10% are
trees: the root spawns a fan-out drawn log-uniformly from 1 to 1,000 children, and one child in
ten spawns 1 to 10 grandchildren (ids `ROOT.K` and `ROOT.K.J`, as ctx.spawn makes them). Each
run takes 1 to 19 steps (10 on average: the issue's "10 steps a day"). Trees are generated until
the runs add up to --runs.

For each N: the load of each shard (roots, runs, steps; max/mean and min/mean), the share of
roots, runs and steps that move when shard N+1 is added (against the ideal 1/(N+1)) and that
every moved tree goes to the new shard, and the CPU time per placement of a run id. Once, at
N=16, every run id (not just each root) is placed with `shard_for` and checked to land on its
root's shard; at the largest N the runs are also placed one by one as if they had no tree, to
show what tree affinity costs in balance. Then the three usual consistent-hash schemes compared
on the same roots (the reason `ShardMap` uses rendezvous hashing). Writes
benchmarks/results/shards.md.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tether.store import ShardMap  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "shards.md"
AGENT_STEPS_PER_DAY = 10
AGENTS = 1_000_000
PEAK_FACTOR = 5  # busiest minute over the day's average: diurnal peak x bursts (an assumption)
BYTES_PER_STEP = 1531  # core.md, benchmark 2: Tether's journal bytes per step with 1 KB messages


@dataclass
class Tree:
    root: str
    children: list[str]  # every descendant's id
    steps: int  # over the whole tree

    @property
    def runs(self) -> int:
        return 1 + len(self.children)


def workload(total_runs: int, seed: int) -> list[Tree]:
    rng = random.Random(seed)
    trees: list[Tree] = []
    made = 0
    while made < total_runs:
        root = f"r{rng.getrandbits(60):015x}"
        children: list[str] = []
        if rng.random() < 0.10:
            fanout = int(math.exp(rng.uniform(0, math.log(1000))))
            for k in range(1, fanout + 1):
                children.append(f"{root}.{k}")
                if rng.random() < 0.10:
                    children.extend(f"{root}.{k}.{j}" for j in range(1, rng.randint(1, 10) + 1))
        children = children[: total_runs - made - 1]
        steps = sum(rng.randint(1, 19) for _ in range(1 + len(children)))
        trees.append(Tree(root, children, steps))
        made += 1 + len(children)
    return trees


def shard_map(n: int) -> ShardMap:
    return ShardMap({f"s{i}": f"postgresql://tether@db{i}:5432/tether" for i in range(n)})


def spread(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return max(values) / mean, min(values) / mean


@dataclass
class Row:
    n: int
    roots: tuple[float, float]
    runs: tuple[float, float]
    steps: tuple[float, float]
    mean_runs: float
    moved_roots: float
    moved_runs: float
    moved_steps: float
    all_to_new: bool
    us_per_placement: float


def simulate(trees: list[Tree], n: int, sample: list[str]) -> Row:
    before, after = shard_map(n), shard_map(n).with_shard("added", "postgresql://tether@new/t")
    roots, runs, steps = Counter[str](), Counter[str](), Counter[str]()
    moved = [0, 0, 0]
    targets = set()
    total_runs = sum(t.runs for t in trees)
    total_steps = sum(t.steps for t in trees)
    for tree in trees:
        home = before.shard_for_root(tree.root).name
        roots[home] += 1
        runs[home] += tree.runs
        steps[home] += tree.steps
        new_home = after.shard_for_root(tree.root).name
        if new_home != home:
            moved[0] += 1
            moved[1] += tree.runs
            moved[2] += tree.steps
            targets.add(new_home)
    names = [s.name for s in before]
    c0 = time.process_time()
    for run_id in sample:
        before.shard_for(run_id)
    per = (time.process_time() - c0) / len(sample) * 1e6
    return Row(n, spread([roots[s] for s in names]), spread([runs[s] for s in names]),
               spread([steps[s] for s in names]), total_runs / n, moved[0] / len(trees),
               moved[1] / total_runs, moved[2] / total_steps, targets <= {"added"}, per)


def all_run_ids(trees: list[Tree]) -> Iterator[tuple[str, str]]:
    for tree in trees:
        yield tree.root, tree.root
        for child in tree.children:
            yield child, tree.root


def check_affinity(trees: list[Tree], n: int) -> tuple[int, int, float]:
    """(runs placed, runs off their root's shard, CPU s): every run id through `shard_for`."""
    m = shard_map(n)
    homes = {tree.root: m.shard_for_root(tree.root) for tree in trees}
    placed = off = 0
    c0 = time.process_time()
    for run_id, root in all_run_ids(trees):
        placed += 1
        if m.shard_for(run_id) is not homes[root]:
            off += 1
    return placed, off, time.process_time() - c0


def independent_spread(trees: list[Tree], n: int) -> tuple[float, float]:
    """max/mean and min/mean of runs per shard if every run were placed by its own id."""
    m = shard_map(n)
    counts = Counter(m.shard_for_root(run_id).name for run_id, _ in all_run_ids(trees))
    return spread([counts[s.name] for s in m])


# --- the alternatives rendezvous hashing is compared with ------------------------------------


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: shards are list positions 0..n-1."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & ((1 << 64) - 1)
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


class Ring:
    """A hash ring with `vnodes` points per named shard."""

    def __init__(self, names: Sequence[str], vnodes: int) -> None:
        points = sorted((_h64(f"{name}#{v}"), name) for name in names for v in range(vnodes))
        self.keys = [p for p, _ in points]
        self.names = [n for _, n in points]

    def place(self, root: str) -> str:
        i = bisect.bisect(self.keys, _h64(root))
        return self.names[i % len(self.names)]


Placer = Callable[[Sequence[str]], Callable[[str], str]]


def _rendezvous(names: Sequence[str]) -> Callable[[str], str]:
    m = ShardMap([(n, f"postgresql://{n}/t") for n in names])
    return lambda root: m.shard_for_root(root).name


def _jump(names: Sequence[str]) -> Callable[[str], str]:
    return lambda root: names[jump_hash(_h64(root), len(names))]


def _ring(vnodes: int) -> Placer:
    def make(names: Sequence[str]) -> Callable[[str], str]:
        return Ring(names, vnodes).place
    return make


SCHEMES: list[tuple[str, Placer]] = [
    ("rendezvous (`ShardMap`)", _rendezvous),
    ("jump hash", _jump),
    ("ring, 100 virtual nodes per shard", _ring(100)),
    ("ring, 1,000 virtual nodes per shard", _ring(1000)),
]


def compare(roots: list[str], n: int) -> list[tuple[str, float, float, float, float, float]]:
    """Per scheme: max/mean roots, moved on add, moved on removing a middle shard, moved on
    reversing the configured order, µs per placement."""
    names = [f"s{i}" for i in range(n)]
    added = [*names, "added"]
    middle = [x for x in names if x != f"s{n // 2}"]
    out = []
    for label, make in SCHEMES:
        place = make(names)
        c0 = time.process_time()
        base = [place(r) for r in roots]
        per = (time.process_time() - c0) / len(roots) * 1e6
        counts = Counter(base)
        imbalance = max(counts.values()) / (len(roots) / n)
        moved = []
        for after in (added, middle, list(reversed(names))):
            p2 = make(after)
            moved.append(sum(1 for r, b in zip(roots, base, strict=True) if p2(r) != b)
                         / len(roots))
        out.append((label, imbalance, moved[0], moved[1], moved[2], per))
    return out


# --- report -----------------------------------------------------------------------------------


def fmt_spread(s: tuple[float, float]) -> str:
    return f"{s[0]:.3f} / {s[1]:.3f}"


def report(args: argparse.Namespace, trees: list[Tree], rows: list[Row],
           affinity: tuple[int, int, float], indep: tuple[float, float], affinity_n: int,
           comparison: list[tuple[str, float, float, float, float, float]], compare_n: int,
           loads: list[float], wall: float, cpu: float) -> str:
    total_runs = sum(t.runs for t in trees)
    sizes = sorted(t.runs for t in trees)
    trees_with_children = sum(1 for t in trees if t.children)
    total_steps = sum(t.steps for t in trees)
    line = (f".venv/bin/python benchmarks/shard_sim.py --runs {args.runs} --shards {args.shards} "
            f"--seed {args.seed}")
    how = (f"`make bench-shards`, which runs `{line}`" if _defaults(args)
           else f"`{line}` (`make bench-shards` runs the defaults: 1M runs, N = 4, 8, 16, 32)")
    average = AGENTS * AGENT_STEPS_PER_DAY / 86400
    peak = average * PEAK_FACTOR
    largest = rows[-1]
    daily_gb = AGENTS * AGENT_STEPS_PER_DAY * BYTES_PER_STEP / 1e9
    lines = [
        "## Sharding simulation (`shard_sim.py`)",
        "",
        f"Reproduce: {how}. Deterministic: the same seed gives the "
        "same placements on any machine (blake2b, not Python's `hash`); only the µs columns "
        "depend on the machine and its load.",
        "",
        f"- Machine: nproc {os.cpu_count()}, Python {sys.version.split()[0]}; 1-min load "
        f"average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end (other work shares "
        f"the machine: the µs per placement are process CPU time, not wall). Whole run: "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU.",
        f"- Run at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        f"- Workload: {total_runs:,} runs in {len(trees):,} trees (seed {args.seed}); "
        f"{trees_with_children:,} roots ({trees_with_children / len(trees):.1%}) have "
        f"descendants, fan-outs log-uniform 1-1,000 plus grandchildren; largest tree "
        f"{sizes[-1]:,} runs, median {sizes[len(sizes) // 2]}, mean {total_runs / len(trees):.1f}; "
        f"{total_steps:,} steps (1-19 per run).",
        "- Placement: `ShardMap.shard_for_root(root)` (rendezvous hashing over the shard names, "
        "`tether/store/shards.py`); a tree goes where its root goes.",
        "",
        "### Load per shard and keys moved by adding a shard",
        "",
        "Balance is max/mean and min/mean over the N shards. Moved: the share that changes "
        "shard when shard N+1 is added (the ideal is 1/(N+1): exactly the new shard's share).",
        "",
        "| N | roots max/min | runs max/min | steps max/min | runs per shard (mean) | moved roots "
        "| moved runs | moved steps | ideal 1/(N+1) | all moved to the new shard | µs CPU per "
        "placement |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.n} | {fmt_spread(r.roots)} | {fmt_spread(r.runs)} | {fmt_spread(r.steps)} | "
            f"{r.mean_runs:,.0f} | {r.moved_roots:.2%} | {r.moved_runs:.2%} | "
            f"{r.moved_steps:.2%} | {1 / (r.n + 1):.2%} | {'yes' if r.all_to_new else 'NO'} | "
            f"{r.us_per_placement:.1f} |")
    placed, off, secs = affinity
    tree_runs = next(r.runs for r in rows if r.n == affinity_n)
    lines += [
        "",
        f"Tree affinity, checked: at N={affinity_n} all {placed:,} run ids (roots, children, "
        f"grandchildren) were placed with `shard_for(run_id)`; {off} landed off their root's "
        f"shard ({secs / placed * 1e6:.1f} µs CPU per run id). What affinity costs: placing the "
        f"same runs one by one as if they had no tree, at N={affinity_n}, runs max/min would be "
        f"{fmt_spread(indep)} instead of {fmt_spread(tree_runs)}: "
        "big trees are indivisible, so the run load is lumpier than the root count, and more so "
        "as N grows and each shard holds fewer big trees. The steps column is what a shard's "
        "workers and WAL carry: its max/mean is the headroom to keep on each primary.",
        "",
        f"### Why rendezvous hashing (the same {len(trees):,} roots, N={compare_n})",
        "",
        "| scheme | roots max/mean | moved when a shard is added | moved when a middle shard "
        "is removed | moved when the config lists the shards in another order | µs CPU per "
        "placement |",
        "|---|---|---|---|---|---|",
    ]
    for label, imb, add, rm, order, per in comparison:
        lines.append(f"| {label} | {imb:.3f} | {add:.2%} | {rm:.2%} | {order:.2%} | {per:.1f} |")
    lines += [
        "",
        f"Ideal when adding: {1 / (compare_n + 1):.2%}; when removing one of {compare_n}: "
        f"{1 / compare_n:.2%} (its own roots). Jump hashing is the cheapest and balances as "
        "well, but its shards are list positions: removing one that is not last, or listing "
        "them in another order, moves most trees. A ring is keyed on names like rendezvous "
        "hashing and is cheaper per placement, but its balance depends on how many virtual "
        "nodes each shard gets (compare the two ring rows) and it is a table to build and "
        "keep. Rendezvous hashing has no parameter, no table, and moves each root with "
        "probability exactly 1/(N+1) when a shard is added; it costs O(N) per placement, "
        "which matters little: placement happens when a run is submitted or looked up by id "
        "from outside, never per step (a worker serves one shard and never routes).",
        "",
        "### The arithmetic of a million agents",
        "",
        f"- {AGENTS:,} agents x {AGENT_STEPS_PER_DAY} steps a day = "
        f"{AGENTS * AGENT_STEPS_PER_DAY:,} durable steps a day = **{average:.0f} steps/s on "
        f"average**. With a peak factor of {PEAK_FACTOR} (busiest minutes over the day's mean: "
        f"an assumption; measure yours), **{peak:,.0f} steps/s at peak**.",
        "- Per shard at peak, the busiest shard carrying max/mean of the steps above: "
        + "; ".join(f"N={r.n}: {peak / r.n * r.steps[0]:,.0f} steps/s" for r in rows) + ".",
        "- Capacity of one shard: the PostgreSQL steps/s measured in "
        "`benchmarks/results/scale.md` (`bench_scale.py`: 1, 2 and 4 worker processes on one "
        "PostgreSQL primary) is the per-shard input. N shards "
        "suffice when the busiest shard's peak above stays under about half of it (headroom "
        "for a failover and for a rebalance's copy traffic).",
        f"- Journal growth: {AGENTS * AGENT_STEPS_PER_DAY:,} steps x ~{BYTES_PER_STEP:,} bytes "
        f"(core.md, benchmark 2, 1 KB messages) = ~{daily_gb:.0f} GB a day in all, "
        f"~{daily_gb / largest.n * largest.steps[0]:.1f} GB a day on the busiest of "
        f"{largest.n} shards.",
        "",
    ]
    return "\n".join(lines)


def _defaults(args: argparse.Namespace) -> bool:
    return (args.runs, args.shards, args.seed) == (1_000_000, "4,8,16,32", 18)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--shards", default="4,8,16,32")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--sample", type=int, default=100_000,
                        help="run ids timed per N (µs per placement)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    counts = [int(x) for x in args.shards.split(",")]
    t0, c0 = time.perf_counter(), time.process_time()
    loads = [os.getloadavg()[0]]
    trees = workload(args.runs, args.seed)
    print(f"shards: {sum(t.runs for t in trees):,} runs in {len(trees):,} trees", flush=True)
    sample = [run_id for run_id, _ in all_run_ids(trees)][: args.sample]
    rows = []
    for n in counts:
        rows.append(simulate(trees, n, sample))
        r = rows[-1]
        print(f"shards: N={n} steps max/mean {r.steps[0]:.3f}, moved runs {r.moved_runs:.2%} "
              f"(ideal {1 / (n + 1):.2%}), {r.us_per_placement:.1f} µs/placement", flush=True)
    affinity_n = 16 if 16 in counts else counts[0]
    affinity = check_affinity(trees, affinity_n)
    print(f"shards: affinity at N={affinity_n}: {affinity[1]} of {affinity[0]:,} off", flush=True)
    indep = independent_spread(trees, affinity_n)
    roots = [t.root for t in trees]
    compare_n = 16 if 16 in counts else counts[-1]
    comparison = compare(roots, compare_n)
    loads.append(os.getloadavg()[0])
    text = report(args, trees, rows, affinity, indep, affinity_n, comparison, compare_n, loads,
                  time.perf_counter() - t0, time.process_time() - c0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"shards: wrote {args.out}")
    return 1 if affinity[1] or not all(r.all_to_new for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
