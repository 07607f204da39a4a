"""Agents and activities for the chaos test (`test_chaos.py`, `benchmarks/bench_chaos.py`).

Every activity performs one *side effect*: an fsync'd append to a shared log file (path in
`$TETHER_CHAOS_LOG`). That file is the outside world the runtime must not corrupt: the chaos
harness later checks it against the journals. Idempotent activities behave like a real idempotent
API: they receive the runtime's `idempotency_key` and, when the key was already used, return the
stored result instead of acting again (they note the deduplicated call on a separate line).
Non-idempotent activities act every time they are called, so running one twice shows up as two
lines for the same (run, step).

Activities sleep a few milliseconds before and after their effect so that SIGKILLs land inside
steps: before the effect (the effect never happened) or after it (it happened, but the journal
does not know).

The agents are deterministic functions of their input (a seed): the harness re-derives the
expected result of every run with `expected_result`, which executes the same agent code against
`DryContext` (no journal, no effects).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tether import Context, activity

LOG_ENV = "TETHER_CHAOS_LOG"
AGENT = "tests.runtime.chaos_agents:trial"
CHILD = "tests.runtime.chaos_agents:child"

# Long timers (> the runtime's inline threshold of 1s) release the worker and come back via
# wake_at; short ones are slept in-process. Both must survive kills.
LONG_SLEEP = 1.1
SHORT_SLEEP = 0.02


def effect_result(step: str, value: int) -> str:
    """What every activity returns: a pure function of its arguments, so the harness can
    compute it (and a human resolving an in-doubt step can supply it with `--skip --result`)."""
    return f"{step}={value * 7 % 1000}"


# -- the side-effect log ----------------------------------------------------------------------
class EffectLog:
    """An append-only JSON-lines file shared by all worker processes.

    `flock` serialises processes; a thread lock serialises the threads of one process (they share
    the file description, so flock alone would not exclude them). Each process keeps an index of
    idempotency keys, caught up incrementally from the bytes other processes appended."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._offset = 0
        self._tail = b""
        self._done: dict[str, Any] = {}  # idempotency key -> result

    def _catch_up(self) -> None:
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return
        data = self._tail + os.pread(self._fd, size - self._offset, self._offset)
        self._offset = size
        *lines, self._tail = data.split(b"\n")
        for line in lines:
            entry = orjson.loads(line)
            if entry.get("idem") and not entry.get("dedup"):
                self._done[entry["key"]] = entry["result"]

    def _write(self, entry: dict[str, Any]) -> None:
        os.write(self._fd, orjson.dumps(entry) + b"\n")  # one write(2): atomic w.r.t. SIGKILL
        os.fsync(self._fd)

    def act(self, run_id: str, step: str, value: int, key: str | None) -> str:
        """Perform the effect (idempotently when `key` is given) and return its result."""
        result = effect_result(step, value)
        entry = {"run": run_id, "step": step, "key": key, "idem": key is not None,
                 "pid": os.getpid(), "t": time.time(), "result": result}
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if key is not None:
                    self._catch_up()
                    if key in self._done:
                        self._write({**entry, "dedup": True})
                        return str(self._done[key])
                self._write(entry)
                if key is not None:
                    self._done[key] = result
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return result


_log: EffectLog | None = None


def effect_log() -> EffectLog:
    global _log
    if _log is None:
        _log = EffectLog(os.environ[LOG_ENV])
    return _log


# -- activities -------------------------------------------------------------------------------
def _pause(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000)


async def _apause(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


@activity(idempotent=True)
def idem_sync(run_id: str, step: str, value: int, before_ms: float, after_ms: float,
              idempotency_key: str) -> str:
    _pause(before_ms)
    result = effect_log().act(run_id, step, value, idempotency_key)
    _pause(after_ms)
    return result


@activity(idempotent=True)
async def idem_async(run_id: str, step: str, value: int, before_ms: float, after_ms: float,
                     idempotency_key: str) -> str:
    await _apause(before_ms)
    result = effect_log().act(run_id, step, value, idempotency_key)
    await _apause(after_ms)
    return result


# Non-idempotent activities deliberately do not take `idempotency_key`: they stand for an API
# that acts on every call (send an e-mail, charge a card without a key).
def plain_sync(run_id: str, step: str, value: int, before_ms: float, after_ms: float) -> str:
    _pause(before_ms)
    result = effect_log().act(run_id, step, value, None)
    _pause(after_ms)
    return result


async def plain_async(run_id: str, step: str, value: int, before_ms: float,
                      after_ms: float) -> str:
    await _apause(before_ms)
    result = effect_log().act(run_id, step, value, None)
    await _apause(after_ms)
    return result


ACTIVITIES: dict[str, Callable[..., Any]] = {
    "idem_sync": idem_sync, "idem_async": idem_async,
    "plain_sync": plain_sync, "plain_async": plain_async,
}
IDEMPOTENT = {"idem_sync", "idem_async"}


# -- plans: what a run does, derived from its seed ----------------------------------------------
def _step_spec(rng: random.Random, name: str) -> dict[str, Any]:
    return {"name": name, "kind": rng.choice(sorted(ACTIVITIES)), "value": rng.randrange(1000),
            "before_ms": rng.choice((0, 1, 3, 6, 10)), "after_ms": rng.choice((0, 0, 2, 5))}


def plan(seed: int) -> dict[str, Any]:
    """The shape of one trial: sequential steps, a timer, a gather of branches (one of which may
    spawn a child run that has its own steps, timer and gather), and a closing step."""
    rng = random.Random(seed)
    branches = []
    for b in range(rng.choice((2, 2, 3))):
        branches.append({
            "steps": [_step_spec(rng, f"g{b}.s{i}") for i in range(rng.choice((1, 2)))],
            "sleep": rng.choice((None, None, SHORT_SLEEP, LONG_SLEEP if rng.random() < 0.3
                                 else SHORT_SLEEP)),
            "child": b == 0 and rng.random() < 0.6,
        })
    return {
        "seed": seed,
        "pre": [_step_spec(rng, f"s{i}") for i in range(rng.choice((1, 2)))],
        "sleep": LONG_SLEEP if rng.random() < 0.25 else SHORT_SLEEP,
        "branches": branches,
        "post": [_step_spec(rng, "final")],
        "child": {"seed": seed * 31 + 7, "grandchild": rng.random() < 0.2},
    }


def child_plan(seed: int, grandchild: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "seed": seed,
        "pre": [_step_spec(rng, f"c{i}") for i in range(rng.choice((1, 2)))],
        "sleep": LONG_SLEEP if rng.random() < 0.2 else SHORT_SLEEP,
        "branches": [
            {"steps": [_step_spec(rng, f"cg{b}.s0")], "sleep": None,
             "child": grandchild and b == 0}
            for b in range(2)
        ],
        "post": [_step_spec(rng, "cfinal")],
        "child": {"seed": seed * 31 + 7, "grandchild": False},
    }


# -- agents -----------------------------------------------------------------------------------
async def _step(ctx: Any, spec: dict[str, Any]) -> str:
    fn = ACTIVITIES[spec["kind"]]
    result: str = await ctx.step(spec["name"], fn, ctx.run_id, spec["name"], spec["value"],
                                 spec["before_ms"], spec["after_ms"])
    return result


async def _branch(ctx: Any, spec: dict[str, Any], child_input: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for step in spec["steps"]:
        out.append(await _step(ctx, step))
    if spec["sleep"] is not None:
        await ctx.sleep(spec["sleep"])
    if spec["child"]:
        handle = await ctx.spawn(CHILD, child_input)
        out.append(await handle)
    return out


async def _execute(ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
    pre = [await _step(ctx, s) for s in p["pre"]]
    await ctx.sleep(p["sleep"])
    child_input = {"seed": p["child"]["seed"], "grandchild": p["child"]["grandchild"]}
    gathered = await ctx.gather(*(_branch(ctx, b, child_input) for b in p["branches"]))
    post = [await _step(ctx, s) for s in p["post"]]
    return {"seed": p["seed"], "pre": pre, "gathered": gathered, "post": post}


async def trial(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """One chaos trial (the root run)."""
    return await _execute(ctx, plan(int(inp["seed"])))


async def child(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    return await _execute(ctx, child_plan(int(inp["seed"]), bool(inp["grandchild"])))


# -- the expected outcome, without a runtime -------------------------------------------------
class _DryHandle:
    def __init__(self, aw: Awaitable[Any]) -> None:
        self._aw = aw

    def __await__(self) -> Any:
        return self._aw.__await__()


class DryContext:
    """Just enough of `Context` to evaluate an agent's result with no journal and no effects."""

    run_id = "dry"

    async def step(self, name: str, fn: Callable[..., Any], run_id: str, step: str, value: int,
                   *_: Any) -> str:
        return effect_result(step, value)

    async def sleep(self, seconds: float) -> None:
        return None

    async def gather(self, *aws: Awaitable[Any]) -> list[Any]:
        return list(await asyncio.gather(*aws))

    async def spawn(self, ref: str, inp: dict[str, Any]) -> _DryHandle:
        assert ref == CHILD
        return _DryHandle(child(DryContext(), inp))  # type: ignore[arg-type]


def expected_result(seed: int) -> dict[str, Any]:
    return asyncio.run(trial(DryContext(), {"seed": seed}))  # type: ignore[arg-type]
