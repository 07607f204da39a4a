"""Latency of a trivial MCP tool call: `tether mcp serve` against the official SDK's own server
(`MCPServer`) serving the same function, with the same client (the SDK's `Client`) over the same
transport — streamable HTTP on 127.0.0.1 and stdio.

Each call is timed from `call_tool` to its answer, sequentially on one connection (one call in
flight: latency, not throughput), after a warm-up. The two servers run side by side and are
measured in alternating rounds, so a change in the machine's load hits both. Tether serves the
tool under a policy that allows it: every call is a run in its SQLite journal (written with
`synchronous=FULL`: a committed step is on disk), which the SDK's server does not do; the
fsync floor of that disk is measured too, since it bounds what durability costs per call.

Usage: python benchmarks/bench_mcp.py [--n 300] [--rounds 3]   (or `make bench-mcp`)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mcp.md"
TARGET = 1.2
BASELINE = "tether baseline"

TOOLS_PY = '''
from tether.tools import ToolRegistry

TOOLS = ToolRegistry()


@TOOLS.tool(side_effect="read", idempotent=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
'''

POLICY = """\
name: bench
rules:
  - id: adds
    tools: [add]
    effect: allow
"""

SDK_SERVER_PY = '''
import sys

from mcp.server import MCPServer

mcp = MCPServer("sdk-bench", log_level="WARNING")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    if sys.argv[1] == "--stdio":
        mcp.run("stdio")
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> float:
    return os.getloadavg()[0]


def fsync_floor(directory: Path, n: int = 50, name: str = "fsync.db") -> float:
    """Median ms of one committed SQLite transaction (WAL, synchronous=FULL) in `directory`."""
    db = sqlite3.connect(directory / name, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x)")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?)", (i,))
        db.execute("COMMIT")
        times.append((time.perf_counter() - t0) * 1000)
    db.close()
    return statistics.median(times)


class Side:
    """One server under test: how to start it over each transport."""

    def __init__(self, name: str, stdio: list[str], http: list[str], env: dict[str, str],
                 cwd: Path) -> None:
        self.name, self.stdio, self.http, self.env, self.cwd = name, stdio, http, env, cwd
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start_http(self) -> None:
        port = free_port()
        args = [a.replace("{port}", str(port)) for a in self.http]
        self.proc = subprocess.Popen(args, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, text=True)
        self.url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name}: HTTP server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def timed_calls(client: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        result = await client.call_tool("add", {"a": i, "b": 1})
        out.append((time.perf_counter() - t0) * 1000)
        if result.is_error or result.content[0].text != str(i + 1):
            raise RuntimeError(f"wrong answer: {result}")
    return out


async def measure(sides: list[Side], transport: str, n: int, rounds: int,
                  warmup: int, cpu: dict[str, float]) -> dict[str, list[float]]:
    """Latencies per side; `cpu` gets each server process's CPU milliseconds per timed call
    (all its threads: the load of the machine does not inflate it the way it does latency)."""
    from contextlib import AsyncExitStack

    from mcp import Client, StdioServerParameters

    samples: dict[str, list[float]] = {s.name: [] for s in sides}
    spent: dict[str, float] = {s.name: 0.0 for s in sides}
    async with AsyncExitStack() as stack:
        clients = {}
        pids: dict[str, int] = {}
        for side in sides:
            if transport == "http":
                target: Any = side.url
                assert side.proc is not None
                pids[side.name] = side.proc.pid
            else:
                target = StdioServerParameters(command=side.stdio[0], args=side.stdio[1:],
                                               env=side.env, cwd=str(side.cwd))
            client = await stack.enter_async_context(Client(target, mode="legacy"))
            if transport != "http":
                pids[side.name] = child_pid(side.stdio, set(pids.values()))
            await timed_calls(client, warmup)
            clients[side.name] = client
        per_round = max(1, n // rounds)
        for _ in range(rounds):
            for side in sides:
                before = cpu_seconds(pids[side.name])
                samples[side.name] += await timed_calls(clients[side.name], per_round)
                spent[side.name] += cpu_seconds(pids[side.name]) - before
    for name, seconds in spent.items():
        cpu[name] = seconds * 1000 / len(samples[name])
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(argv: list[str], known: set[int]) -> int:
    """The pid of the stdio server this process just started with `argv` (not in `known`)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known:
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and [c.decode() for c in cmdline if c] == argv:
            return int(entry.name)
    raise RuntimeError(f"cannot find the server process {argv}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="timed calls per server and transport")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--baseline", type=Path, default=None, metavar="ROOT",
                        help="another checkout of Tether (e.g. a git worktree of an older "
                        "commit), served the same way and measured in the same rounds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-mcp-", dir=ROOT / ".tether"))
    try:
        bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the servers' journals: not kept


def bench(args: argparse.Namespace, work: Path) -> None:
    """Both transports, the commit floors and the results file, in the scratch dir `work`."""
    (work / "bench_tools.py").write_text(TOOLS_PY)
    (work / "policy.yaml").write_text(POLICY)
    (work / "sdk_server.py").write_text(SDK_SERVER_PY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TETHER_DB": str(work / "tether.db")}
    py = sys.executable
    tether_cmd = [py, "-m", "tether", "mcp", "serve", "--tools", "bench_tools.py:TOOLS",
                  "--policy", "policy.yaml"]
    sides = [
        Side("SDK MCPServer", [py, "sdk_server.py", "--stdio"],
             [py, "sdk_server.py", "--http", "{port}"], env, work),
        Side("tether mcp serve", tether_cmd, [*tether_cmd, "--http", "--port", "{port}"],
             env, work),
    ]
    if args.baseline is not None:
        base_env = {**env, "PYTHONPATH": str(args.baseline.resolve()),
                    "TETHER_DB": str(work / "baseline.db")}
        sides.append(Side(BASELINE, tether_cmd, [*tether_cmd, "--http", "--port", "{port}"],
                          base_env, work))
    load_start = load()
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, float]] = {"streamable HTTP": {}, "stdio": {}}
    # the disk's commit latency drifts with the other work on the machine: measured before each
    # transport's calls (and at the end), so each transport's figures come with their own
    floors: dict[str, float] = {"streamable HTTP": fsync_floor(work, name="fsync-http.db")}
    for side in sides:
        side.start_http()
    try:
        results["streamable HTTP"] = asyncio.run(
            measure(sides, "http", args.n, args.rounds, args.warmup, cpu["streamable HTTP"]))
    finally:
        for side in sides:
            side.stop()
    floors["stdio"] = fsync_floor(work, name="fsync-stdio.db")
    results["stdio"] = asyncio.run(measure(sides, "stdio", args.n, args.rounds, args.warmup,
                                           cpu["stdio"]))
    load_end = load()
    floors["end"] = fsync_floor(work, name="fsync-end.db")
    journaled = _journal_check(work / "tether.db")
    write(results, args, floors, load_start, load_end, journaled, cpu)


def _journal_check(db: Path) -> int:
    """How many tool-call runs Tether journaled (every timed and warm-up call is one)."""
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM runs WHERE status='succeeded'").fetchone()[0])
    finally:
        con.close()


def _why_not(results: dict[str, dict[str, list[float]]], floors: dict[str, float]) -> str:
    """The verdict when the target is missed, from this run's own figures: the time 1.2x leaves
    per call against what the call's one commit costs here, and what is left beyond it."""
    parts = []
    for transport, samples in results.items():
        sdk, ours = pct(samples["SDK MCPServer"], 0.5), pct(samples["tether mcp serve"], 0.5)
        budget, commit = (TARGET - 1) * sdk, floors[transport]
        parts.append(f"over {transport} 1.2x leaves {budget:.2f} ms per call beyond the SDK's "
                     f"p50; its one commit took about {commit:.2f} ms and Tether's p50 was "
                     f"{ours - sdk:.2f} ms above the SDK's")
    return ("The ≤ 1.2x target is NOT met. The protocol layer is the SDK's own (Tether adds one "
            "middleware); what costs is making each call a durable, governed run: "
            + "; ".join(parts) + ". What the commit does not explain is the server's CPU per "
            "call (the guards' checks, the runtime's journal writes, on a shared machine). "
            "Meeting the "
            "target with a busy disk would take answering before the journal is on disk, which "
            "Tether does not do.")


def _baseline_lines(results: dict[str, dict[str, list[float]]],
                    cpu: dict[str, dict[str, float]], args: argparse.Namespace) -> list[str]:
    """With --baseline: the other checkout's figures, from the same rounds."""
    if args.baseline is None:
        return []
    commit = _commit(args.baseline)
    lines = [f"Baseline: `tether mcp serve` from another checkout of commit {commit} "
             f"(`git worktree add --detach {args.baseline} {commit}`), in the same rounds; this "
             f"checkout is commit {_commit(ROOT)}.", "",
             "| transport | p50 baseline | p50 now | p99 baseline | p99 now | "
             "CPU/call baseline | CPU/call now |", "|---|---|---|---|---|---|---|"]
    for transport, samples in results.items():
        base, now = samples[BASELINE], samples["tether mcp serve"]
        c = cpu[transport]
        lines.append(f"| {transport} | {pct(base, 0.5):.2f} | {pct(now, 0.5):.2f} | "
                     f"{pct(base, 0.99):.2f} | {pct(now, 0.99):.2f} | {c[BASELINE]:.2f} | "
                     f"{c['tether mcp serve']:.2f} |")
    return [*lines, ""]


def _commit(root: Path) -> str:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def write(results: dict[str, dict[str, list[float]]], args: argparse.Namespace,
          floors: dict[str, float], load_start: float, load_end: float, journaled: int,
          cpu: dict[str, dict[str, float]]) -> None:
    import mcp

    version = re.sub(r"[^0-9.a-z]", "", getattr(mcp, "__version__", "") or "")
    if not version:
        from importlib.metadata import version as dist_version

        version = dist_version("mcp")
    rows = []
    verdicts = []
    for transport, samples in results.items():
        sdk, ours = samples["SDK MCPServer"], samples["tether mcp serve"]
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            a, b = pct(sdk, q), pct(ours, q)
            ratio = b / a
            met = "met" if ratio <= TARGET else "NOT met"
            rows.append(f"| {transport} | {label} | {a:.2f} | {b:.2f} | {ratio:.2f}x | "
                        f"≤ {TARGET}x: {met} | {floors[transport]:.2f} |")
            verdicts.append(ratio <= TARGET)
    lines = [
        "# MCP server: tool-call latency",
        "",
        "A trivial tool (`add(a, b)`) served by `tether mcp serve` (under a policy that allows "
        "it; every call a run in the SQLite journal) and by the official SDK's own server "
        f"(`mcp` {version}, `MCPServer`), called by the same client (the SDK's `Client`, "
        "2025-11-25 handshake) over the same transport, one call in flight, "
        f"{args.n} timed calls per server and transport after {args.warmup} warm-up calls, in "
        f"{args.rounds} rounds alternating between the two servers. Milliseconds.",
        "",
        "Reproduce: `make bench-mcp` (or `.venv/bin/python benchmarks/bench_mcp.py --n "
        f"{args.n} --rounds {args.rounds} --warmup {args.warmup}"
        + (f" --baseline {args.baseline}" if args.baseline else "") + "`)",
        "",
        f"Machine: {os.uname().machine}, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}; 1-minute load average {load_start:.2f} at start, "
        f"{load_end:.2f} at end (the machine is shared: other work ran on the same CPUs).",
        "",
        "| transport | percentile | SDK MCPServer | tether mcp serve | ratio | target | "
        "one durable commit |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *_baseline_lines(results, cpu, args),
        "Server CPU per call: CPU milliseconds (user + system, all threads, read from /proc) "
        "each server process spent over its timed calls, divided by their number. Unlike "
        "latency, the other work on the machine does not inflate it.",
        "",
        "| transport | SDK MCPServer | tether mcp serve | ratio |",
        "|---|---|---|---|",
        *[f"| {t} | {c['SDK MCPServer']:.2f} | {c['tether mcp serve']:.2f} | "
          f"{c['tether mcp serve'] / c['SDK MCPServer']:.2f}x |" for t, c in cpu.items()],
        "",
        "Where the difference goes: every Tether call is a run, executed through the guards "
        "in the server's process and answered once it is durable. The tool here is declared "
        "safe to repeat (`side_effect=\"read\", idempotent=True`), so its run is one SQLite "
        "transaction: created already claimed by the server's worker, its step's start and "
        "policy decision, the result, the tenant's usage counters and the run's end "
        "(`Worker.start_new`; a tool that is not safe to repeat takes two: its start is "
        "durable before it runs). \"One durable commit\" is the median of 50 small commits "
        "(WAL, `synchronous=FULL`, in a fresh database next to the journal) measured just "
        f"before that transport's calls ({floors['end']:.2f} ms at the end): a floor under "
        "Tether's latency that the SDK's server, which writes nothing, does not pay. The disk "
        "is shared as well, and its latency varied from run to run. "
        f"{journaled} calls were journaled (runs that succeeded in the benchmark's database).",
        "",
        "The ≤ 1.2x target is met." if all(verdicts) else _why_not(results, floors),
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
