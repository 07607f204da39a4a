"""The load generator of bench_api.py and LangGraph's side of it: POSTs on their own
connections (burst and open-loop steady schedules), the in-flight count, CPU meters, and the
same workload against `langgraph dev` (installed by `make bench-api` in .tether/lgapi-venv)."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LG_VENV = ROOT / ".tether" / "lgapi-venv"
IN_FLIGHT = 1000  # the steady round's p99 counts POSTs sent while this many runs were in flight
LG_GRAPH = '''
import asyncio
from typing import TypedDict
from langgraph.graph import StateGraph, START, END


class State(TypedDict, total=False):
    order: int
    hold: float


def echo(state: State) -> State:
    return state


async def call(state: State) -> State:
    await asyncio.sleep(state["hold"])
    return {"order": state["order"]}


def _graph(node):
    builder = StateGraph(State)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile()


echo_graph = _graph(echo)
hold_graph = _graph(call)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _cpu_of_tree(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, total, grew = {pid}, 0.0, True
    while grew:
        found = {p for p, (ppid, _) in stats.items() if ppid in tree} - tree
        grew, tree = bool(found), tree | found
    for p in tree:
        total += stats.get(p, (0, 0.0))[1]
    return total


class Meter:
    """Wall time, server CPU and this load generator's CPU over one round."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.t, self.server, self.client = time.perf_counter(), _cpu_of_tree(server_pid), \
            time.process_time()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t
        return {"wall": wall, "server_cpu": _cpu_of_tree(self.pid) - self.server,
                "client_cpu": time.process_time() - self.client}


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


class Answer:
    """A response read by `post`: status and JSON body."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code, self.text = status_code, body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


Post = Callable[[str, dict[str, Any]], Awaitable[tuple[float, Answer]]]


def poster(base: str, headers: dict[str, str]) -> Post:
    """POSTs each on its own connection, written and read with asyncio streams: what the server
    takes to answer, not what a client library spends (httpx's pool costs more than either
    server at 1,000 connections)."""
    host, _, port = base.removeprefix("http://").partition(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def post(path: str, body: dict[str, Any]) -> tuple[float, Answer]:
        data = json.dumps(body).encode()
        t = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Type: "
                     f"application/json\r\nContent-Length: {len(data)}\r\nConnection: close"
                     "\r\n\r\n".encode() + data)
        await writer.drain()
        raw = await reader.read()
        ms = (time.perf_counter() - t) * 1000
        writer.close()
        headers_, _, payload = raw.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in headers_.lower():
            payload = _dechunk(payload)
        return ms, Answer(int(headers_.split(b" ", 2)[1]), payload)

    return post


async def burst(post: Post, requests: list[tuple[str, dict[str, Any]]]
                ) -> list[tuple[float, Answer]]:
    return list(await asyncio.gather(*(post(p, b) for p, b in requests)))


async def steady(post: Post, requests: list[tuple[str, dict[str, Any]]], rate: float
                 ) -> tuple[list[tuple[float, float, Answer]], float]:
    """Open loop: request i is sent at start + i / rate. Returns (sent at, ms, answer) per
    request and the largest delay of a send behind its schedule (the load generator's lag)."""
    loop = asyncio.get_running_loop()
    start, lag = loop.time() + 0.05, 0.0

    async def one(i: int, path: str, body: dict[str, Any]) -> tuple[float, float, Answer]:
        nonlocal lag
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        lag = max(lag, loop.time() - (start + i / rate))
        sent = time.time()
        ms, answer = await post(path, body)
        return sent, ms, answer

    done = await asyncio.gather(*(one(i, p, b) for i, (p, b) in enumerate(requests)))
    return list(done), lag


def in_flight_at(times: list[float], sent: list[float], finished: list[float]) -> list[int]:
    """How many runs were in flight — their POST sent, the run not finished — at each of
    `times`. A POST the server has not answered yet counts: its run is the server's work."""
    starts, ends = sorted(sent), sorted(finished)
    return [bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t) for t in times]


def steady_figures(sent: list[tuple[float, float, Answer]], finished: list[float]
                   ) -> dict[str, Any]:
    """`finished`: when each of the round's runs finished (the server's own record)."""
    times = [s for s, _, _ in sent]
    flying = in_flight_at(times, times, finished)
    loaded = [ms for (_, ms, _), n in zip(sent, flying, strict=True) if n >= IN_FLIGHT]
    every = [ms for _, ms, _ in sent]
    return {"steady_p50": statistics.median(every), "steady_p99": pct(every, 99),
            "loaded_n": len(loaded),
            "loaded_p50": statistics.median(loaded) if loaded else None,
            "loaded_p99": pct(loaded, 99) if loaded else None,
            "loaded_max": max(loaded) if loaded else None,
            "peak_in_flight": max(in_flight_at(times + finished, times, finished))}


def start_server(cmd: list[str], cwd: Path, env: dict[str, str], probe: str
           ) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(probe, proc)
    except BaseException:
        proc.terminate()
        raise
    return proc


# ---------------------------------------------------------------------------- langgraph
def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _lg_rounds(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    post = poster(base, {})
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:

        async def threads(status: str | None = None) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            while True:
                body: dict[str, Any] = {"limit": 1000, "offset": len(found)}
                if status:
                    body["status"] = status
                page = (await c.post("/threads/search", json=body)).json()
                found += page
                if len(page) < 1000:
                    return found

        async def settled(total: int) -> int:  # threads idle; how many are
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                busy = (await c.post("/threads/search", json={"status": "busy", "limit": 1}
                                     )).json()
                if not busy:
                    idle = len(await threads("idle"))
                    if idle >= total:
                        return idle
                await asyncio.sleep(0.25)
            return len(await threads("idle"))

        def request(i: int, graph: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            tid = uuid.uuid5(uuid.NAMESPACE_URL, f"order-{i}")
            return (f"/threads/{tid}/runs", {"assistant_id": graph, "input": body,
                                             "if_not_exists": "create"})

        n = args.n
        meter = Meter(pid)
        first = await burst(post, [request(i, "echo", {"order": i}) for i in range(n)])
        a = meter.stop()
        await settled(n)
        m = round(args.rate * args.seconds)
        more = [request(n + i, "hold", {"order": n + i, "hold": args.hold}) for i in range(m)]
        meter = Meter(pid)
        sent, lag = await steady(post, more, args.rate)
        idle = await settled(n + m)
        b = meter.stop()
        everything = await threads()
    finished = [_epoch(t["updated_at"]) for t in everything
                if t.get("values", {}).get("hold") is not None]
    lat = [ms for ms, _ in first]
    bad = [r.status_code for _, r in first if r.status_code >= 300] + [
        r.status_code for _, _, r in sent if r.status_code >= 300]
    return {"p50": statistics.median(lat), "p99": pct(lat, 99), "max": max(lat),
            "burst_s": a["wall"], "burst_server_cpu": a["server_cpu"],
            "burst_client_cpu": a["client_cpu"], "steady_n": m, "steady_s": b["wall"],
            "steady_server_cpu": b["server_cpu"], "steady_client_cpu": b["client_cpu"],
            "lag_ms": lag * 1000, "throughput": m / b["wall"], "errors": len(bad),
            "threads": len(everything), "unfinished": n + m - idle,
            **steady_figures(sent, finished)}


def run_langgraph(args: argparse.Namespace) -> dict[str, Any] | str:
    exe = LG_VENV / "bin" / "langgraph"
    if not exe.exists():
        return (f"not run: langgraph-cli[inmem] is not installed in {LG_VENV} (`make "
                "bench-api` installs it from PyPI; it did not install here)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-lg-"))
    (tmp / "graph.py").write_text(LG_GRAPH)
    (tmp / "langgraph.json").write_text(json.dumps({"dependencies": ["."], "graphs": {
        "echo": "./graph.py:echo_graph", "hold": "./graph.py:hold_graph"}}))
    port = free_port()
    jobs = str(round(args.rate * args.seconds) + args.n)  # as many as Tether's worker takes
    proc = start_server([str(exe), "dev", "--no-browser", "--no-reload", "--port", str(port),
                   "--n-jobs-per-worker", jobs], tmp, {"LANGGRAPH_NO_ANALYTICS": "1"},
                  f"http://127.0.0.1:{port}/ok")
    try:
        return asyncio.run(_lg_rounds(f"http://127.0.0.1:{port}", proc.pid, args))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def lg_version() -> str:
    try:
        out = subprocess.run([str(LG_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('langgraph-api'),"
                              " m.version('langgraph'))"], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


