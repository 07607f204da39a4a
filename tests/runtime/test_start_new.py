"""`Worker.start_new`: a run that a caller in this process waits for is executed at once and
written with its first write (`Context.provisional`).

Why: each MCP tool call is such a run. Written the usual way it cost three commits in sequence
(submission and claim, the step's start, its end); a call of a tool that is safe to repeat is
now one. These tests check what must still hold: nothing of the run is in the store before its
first write and everything is after it, in journal order; a step that is not safe to repeat is
durably started before it runs; a long call shows in the store after `UNWRITTEN_AT_MOST_S`;
the heartbeat does not take a provisional run (nor one whose task has not run yet) for one
whose lease was lost; background writes go with the first write; and the worker declines what
it cannot take this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.runtime.transactions import count_transactions
from tether import Context, Tether
from tether.runtime import Worker, new_run_id
from tether.runtime import worker as worker_module
from tether.store import RunRecord, Tx

HERE = "tests.runtime.test_start_new"
GATES: dict[str, asyncio.Event] = {}
ENTERED: dict[str, asyncio.Event] = {}


async def _gated(name: str) -> str:
    ENTERED[name].set()
    await GATES[name].wait()
    return f"{name} done"


async def repeatable_step(ctx: Context, gate: str) -> str:
    result: str = await ctx.step("gated", _gated, gate, idempotent=True)
    return result


async def unrepeatable_step(ctx: Context, gate: str) -> str:
    result: str = await ctx.step("gated", _gated, gate, idempotent=False)
    return result


def _count_usage(tx: Tx) -> None:
    tx.add_usage("default", "2026-12-06", {"test_writes": 1.0})


async def background_write(ctx: Context, gate: str) -> str:
    ctx.write(_count_usage)  # not awaited, like the guards' counters
    result: str = await ctx.step("gated", _gated, gate, idempotent=True)
    return result


def _run(agent: str, gate: str, tenant: str = "default") -> RunRecord:
    GATES[gate], ENTERED[gate] = asyncio.Event(), asyncio.Event()
    run_id = new_run_id()
    return RunRecord(id=run_id, agent=f"{HERE}:{agent}", status="queued", input=gate,
                     tenant=tenant, root_id=run_id)


def _count_transactions(worker: Worker) -> list[int]:
    """`count_transactions`, with the serving loop no longer kicked (its claim when a run ends
    would be a transaction of its own, not the run's)."""
    worker.kick = lambda: None  # type: ignore[method-assign]
    return count_transactions(worker)


async def _settled(t: Tether, run_id: str) -> RunRecord:
    started = time.monotonic()
    while True:
        run = t.store.get_run(run_id)
        if run is not None and run.finished:
            return run
        assert time.monotonic() - started < 20, f"run {run_id}: {run}"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _serving(db_path: str, **worker: Any) -> AsyncIterator[tuple[Tether, Worker]]:
    t = Tether(db_path)
    w = t.worker(poll_interval=30.0, **worker)
    w._listen = lambda loop: None  # type: ignore[method-assign]  # count our writes only
    stop = asyncio.Event()
    task = asyncio.create_task(w.serve(stop=stop))
    while w._kick is None:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the loop's first (empty) claim is done
    try:
        yield t, w
    finally:
        for gate in GATES.values():
            gate.set()
        stop.set()
        w.kick()
        await task
        t.close()


@pytest.fixture
async def serving(db_path: str) -> AsyncIterator[tuple[Tether, Worker]]:
    async with _serving(db_path, lease_ttl=30.0) as served:
        yield served


async def test_a_repeatable_one_step_run_is_one_transaction(
        serving: tuple[Tether, Worker]) -> None:
    t, worker = serving
    counted = _count_transactions(worker)
    run = _run("repeatable_step", "one")
    assert worker.start_new(run) is True
    await ENTERED["one"].wait()
    assert t.store.get_run(run.id) is None, "written before its first write"
    assert counted[0] == 0
    GATES["one"].set()
    done = await _settled(t, run.id)
    assert (done.status, done.result, done.attempts) == ("succeeded", "one done", 1)
    assert counted[0] == 1, f"{counted[0]} transactions for a one-step run"
    events = t.store.load_events(run.id)
    assert [(e.seq, e.kind) for e in events] == [
        (1, "run_submitted"), (2, "run_started"), (3, "step_started"), (4, "step_completed"),
        (5, "run_completed")]
    assert events[0].data["agent"] == run.agent
    assert worker.store.leases([run.id]) == {}  # released with the end


async def test_an_unrepeatable_step_is_durably_started_before_it_runs(
        serving: tuple[Tether, Worker]) -> None:
    t, worker = serving
    run = _run("unrepeatable_step", "once")
    assert worker.start_new(run) is True
    await ENTERED["once"].wait()
    written = t.store.get_run(run.id)
    assert written is not None and written.status == "running"
    assert [e.kind for e in t.store.load_events(run.id)] == [
        "run_submitted", "run_started", "step_started"]
    assert worker.store.leases([run.id])[run.id][0] == worker.owner
    GATES["once"].set()
    assert (await _settled(t, run.id)).status == "succeeded"


async def test_a_long_call_is_written_after_the_limit(
        serving: tuple[Tether, Worker], monkeypatch: pytest.MonkeyPatch) -> None:
    t, worker = serving
    monkeypatch.setattr(worker_module, "UNWRITTEN_AT_MOST_S", 0.05)
    run = _run("repeatable_step", "long")
    assert worker.start_new(run) is True
    await ENTERED["long"].wait()
    deadline = time.monotonic() + 20
    while t.store.get_run(run.id) is None:
        assert time.monotonic() < deadline, "a long provisional run never reached the store"
        await asyncio.sleep(0.01)
    assert [e.kind for e in t.store.load_events(run.id)] == [
        "run_submitted", "run_started", "step_started"]
    GATES["long"].set()
    assert (await _settled(t, run.id)).status == "succeeded"


async def test_the_heartbeat_leaves_a_provisional_run_alone(db_path: str) -> None:
    async with _serving(db_path, lease_ttl=0.3) as (t, worker):  # a beat every 0.1 s
        run = _run("repeatable_step", "beats")
        assert worker.start_new(run) is True
        await ENTERED["beats"].wait()
        await asyncio.sleep(0.35)  # several beats while it is provisional (limit: 0.5 s)
        assert run.id in worker.executing, "the heartbeat stopped a provisional run"
        GATES["beats"].set()
        done = await _settled(t, run.id)
        assert (done.status, done.result) == ("succeeded", "beats done")


async def test_a_beat_before_the_run_first_executes_leaves_it_alone(
        serving: tuple[Tether, Worker]) -> None:
    """A heartbeat in the same turn of the event loop as `start_new`, before the run's task
    first ran: the run has no context yet, and no lease in the store. Seen under load (a paused
    MCP server process): the beat took it for a run whose lease was lost, stopped it, and the
    caller got "run ... does not exist: it was never written"."""
    t, worker = serving
    run = _run("repeatable_step", "early")
    assert worker.start_new(run) is True
    await worker._beat()  # no turn of the loop in between: the run's task has not started
    try:
        await asyncio.wait_for(ENTERED["early"].wait(), 10)
    except TimeoutError:
        pytest.fail(f"the beat stopped the run before it executed: {worker.executing}")
    GATES["early"].set()
    done = await _settled(t, run.id)
    assert (done.status, done.result) == ("succeeded", "early done")


async def test_background_writes_go_with_the_first_write(
        serving: tuple[Tether, Worker]) -> None:
    t, worker = serving
    counted = _count_transactions(worker)
    run = _run("background_write", "bg")
    assert worker.start_new(run) is True
    await ENTERED["bg"].wait()
    assert counted[0] == 0 and t.store.get_usage("default", "2026-12-06") == {}
    GATES["bg"].set()
    assert (await _settled(t, run.id)).status == "succeeded"
    assert counted[0] == 1
    assert t.store.get_usage("default", "2026-12-06")["test_writes"] == 1.0


async def test_what_the_worker_declines(db_path: str) -> None:
    t = Tether(db_path)
    idle = t.worker()
    assert idle.start_new(_run("repeatable_step", "idle")) is False  # not serving
    limited = t.worker(tenant_limits={"acme": 1}, tenants=["acme", "other"])
    limited._kick = asyncio.Event()  # as if serving
    assert limited.start_new(_run("repeatable_step", "limited", tenant="acme")) is False
    assert limited.start_new(_run("repeatable_step", "elsewhere", tenant="nobody")) is False
    full = t.worker(concurrency=0)
    full._kick = asyncio.Event()
    assert full.start_new(_run("repeatable_step", "full")) is False
    unknown = t.worker()
    unknown._kick = asyncio.Event()
    missing = _run("repeatable_step", "missing")
    missing.agent = f"{HERE}:no_such_agent"
    assert unknown.start_new(missing) is False
    assert t.store.list_runs() == []  # declining writes nothing
    t.close()
