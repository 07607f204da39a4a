"""LangGraph's side of the core benchmarks (see bench_core.py, which runs this file).

Runs ONLY in the benchmark venv `benchmarks/.lg-venv` (LangGraph 1.2.x + langgraph-checkpoint-sqlite
+ aiosqlite); Tether never depends on LangGraph. Usage:

    benchmarks/.lg-venv/bin/python benchmarks/lg_side.py BENCH '{"json": "params"}'

It prints one JSON object on stdout. Every graph runs with a SQLite checkpointer on a file in the
directory given by the `dir` parameter, and every invoke uses `durability="sync"` (each checkpoint
is committed before the next step starts), the only mode comparable with Tether's journal.

The graph's state is LangGraph's documented chat state, `MessagesState` (an `add_messages`
reducer over `AIMessage` objects), unless the parameters say `"state": "dicts"`: then a plain
`Annotated[list, operator.add]` of `{"role", "content"}` dicts, LangGraph's cheapest state.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import sqlite3
import statistics
import sys
import time
import uuid
from importlib import metadata
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.core.messages import message  # the same bytes as Tether's side


class DictState(TypedDict):
    messages: Annotated[list, operator.add]


def _new_message(state_kind: str) -> Any:
    """How a node builds the message it appends: an `AIMessage` with the same content for
    `MessagesState`, the dict itself for the plain-dict state."""
    if state_kind == "messages":
        return lambda node, i, size: AIMessage(content=message(node, i, size)["content"])
    if state_kind == "dicts":
        return message
    raise SystemExit(f"unknown state {state_kind!r}: use 'messages' or 'dicts'")


def cycle_graph(limit: int, size: int, *, tail: bool = False, sleep: float = 0.0,
                state: str = "messages") -> StateGraph:
    """Two nodes, a <-> b, each appending one message, until `limit` messages. With `tail`, the
    cycle ends in a node `c` (used as the interrupt point of the resume benchmark)."""
    graph = StateGraph(MessagesState if state == "messages" else DictState)
    done = "c" if tail else END
    new = _new_message(state)

    if sleep:
        async def node_a(state: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(sleep)
            return {"messages": [new("a", len(state["messages"]), size)]}

        async def node_b(state: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(sleep)
            return {"messages": [new("b", len(state["messages"]), size)]}
    else:
        def node_a(state: dict[str, Any]) -> dict[str, Any]:  # type: ignore[misc]
            return {"messages": [new("a", len(state["messages"]), size)]}

        def node_b(state: dict[str, Any]) -> dict[str, Any]:  # type: ignore[misc]
            return {"messages": [new("b", len(state["messages"]), size)]}

    graph.add_node("a", node_a)
    graph.add_node("b", node_b)
    graph.add_edge(START, "a")
    graph.add_conditional_edges(
        "a", lambda s: done if len(s["messages"]) >= limit else "b", ["b", done])
    graph.add_conditional_edges(
        "b", lambda s: done if len(s["messages"]) >= limit else "a", ["a", done])
    if tail:
        graph.add_node("c", _mark_live)
        graph.add_edge("c", END)
    return graph


_LIVE: list[float] = []


def _mark_live(state: dict[str, Any]) -> dict[str, Any]:
    _LIVE.append(time.perf_counter())
    return {}


def _config(thread: str, limit: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": limit + 20}


def _saver(path: str) -> SqliteSaver:
    conn = sqlite3.connect(path, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    return saver


def _wal_checkpointed_size(path: str) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


# -- 1. CPU per durable step -----------------------------------------------------------------
def bench_cpu(p: dict[str, Any]) -> dict[str, Any]:
    steps, size, repeats = p["steps"], p["size"], p["repeats"]
    path = os.path.join(p["dir"], f"lg-cpu-{p.get('synchronous', 'default')}.sqlite")
    saver = _saver(path)
    if p.get("synchronous"):  # diagnostic only: how much of the step is the fsync
        saver.conn.execute(f"PRAGMA synchronous={p['synchronous']}")
    kind = p.get("state", "messages")
    app = cycle_graph(steps, size, state=kind).compile(checkpointer=saver)
    # warm-up: one full-length run, so the measured ones see a grown WAL (the steady state of
    # a long-lived process), as on Tether's side
    app.invoke({"messages": []}, _config("warm", steps), durability="sync")
    cpu, wall = [], []
    for r in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = app.invoke({"messages": []}, _config(f"cpu-{r}", steps), durability="sync")
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert len(out["messages"]) == steps, len(out["messages"])
    return {"steps": steps, "cpu_s": cpu, "wall_s": wall,
            "cpu_per_step_ms": statistics.median(cpu) / steps * 1000,
            "wall_per_step_ms": statistics.median(wall) / steps * 1000,
            "synchronous": _synchronous(saver.conn), "state": kind}


# -- 2. storage growth -----------------------------------------------------------------------
def bench_storage(p: dict[str, Any]) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    for steps in p["steps"]:
        path = os.path.join(p["dir"], f"lg-storage-{steps}.sqlite")
        saver = _saver(path)
        app = cycle_graph(steps, p["size"], state=p.get("state", "messages")).compile(
            checkpointer=saver)
        out = app.invoke({"messages": []}, _config("storage", steps), durability="sync")
        assert len(out["messages"]) == steps
        saver.conn.close()
        sizes[str(steps)] = _wal_checkpointed_size(path)
    return {"bytes": sizes, "state": p.get("state", "messages")}


# -- 3. concurrent throughput ----------------------------------------------------------------
async def _throughput(p: dict[str, Any]) -> dict[str, Any]:
    runs, steps, sleep = p["runs"], p["steps"], p["sleep"]
    path = os.path.join(p["dir"], "lg-throughput.sqlite")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.setup()
        app = cycle_graph(steps, p["size"], sleep=sleep,
                          state=p.get("state", "messages")).compile(checkpointer=saver)
        await app.ainvoke({"messages": []}, _config("warm", steps), durability="sync")
        c0, w0 = time.process_time(), time.perf_counter()
        outs = await asyncio.gather(*(
            app.ainvoke({"messages": []}, _config(f"t{i}", steps), durability="sync")
            for i in range(runs)))
        wall = time.perf_counter() - w0
        cpu = time.process_time() - c0
        assert all(len(o["messages"]) == steps for o in outs)
        async with saver.conn.execute("SELECT COUNT(*) FROM checkpoints") as cur:
            checkpoints = (await cur.fetchone())[0]
        async with saver.conn.execute("SELECT COUNT(*) FROM writes") as cur:
            writes = (await cur.fetchone())[0]
        async with saver.conn.execute("PRAGMA synchronous") as cur:
            synchronous = (await cur.fetchone())[0]
    return {"runs": runs, "steps": steps, "wall_s": wall, "cpu_s": cpu,
            "steps_per_s": runs * steps / wall, "checkpoint_rows": checkpoints,
            "write_rows": writes, "synchronous": synchronous}


def bench_throughput(p: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_throughput(p))


# -- 4. resume from the latest checkpoint ----------------------------------------------------
def bench_resume(p: dict[str, Any]) -> dict[str, Any]:
    steps, size, repeats = p["steps"], p["size"], p["repeats"]
    path = os.path.join(p["dir"], "lg-resume.sqlite")
    saver = _saver(path)
    kind = p.get("state", "messages")
    app = cycle_graph(steps, size, tail=True, state=kind).compile(checkpointer=saver,
                                                                  interrupt_before=["c"])
    threads = [f"resume-{uuid.uuid4().hex[:8]}" for _ in range(repeats + 1)]
    for t in threads:  # build: `steps` node executions, then stop before node c
        app.invoke({"messages": []}, _config(t, steps), durability="sync")
    saver.conn.close()
    times: list[float] = []
    for i, t in enumerate(threads):
        # a fresh connection and graph per resume: a new worker picking the thread up
        saver = _saver(path)
        app = cycle_graph(steps, size, tail=True, state=kind).compile(
            checkpointer=saver, interrupt_before=["c"])
        _LIVE.clear()
        t0 = time.perf_counter()
        app.invoke(None, _config(t, steps), durability="sync")
        assert _LIVE, "node c did not run"
        if i > 0:  # the first resume warms imports and caches up
            times.append(_LIVE[0] - t0)
        saver.conn.close()
    state_rows = sqlite3.connect(path).execute(
        "SELECT COUNT(*) FROM checkpoints WHERE thread_id=?", (threads[0],)).fetchone()[0]
    return {"steps": steps, "times_s": times, "p50_ms": statistics.median(times) * 1000,
            "checkpoints_per_thread": state_rows}


def main() -> None:
    bench, params = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    fn = {"cpu": bench_cpu, "storage": bench_storage, "throughput": bench_throughput,
          "resume": bench_resume}[bench]
    result = fn(params)
    result["versions"] = {name: metadata.version(name) for name in (
        "langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite", "aiosqlite",
        "langchain-core")}
    result["python"] = sys.version.split()[0]
    result["sqlite"] = sqlite3.sqlite_version
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
