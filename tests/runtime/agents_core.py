"""Agents used by the runtime tests. Module-level so runs can reference them by name.

`CALLS` records every live execution of an activity, so tests can prove replay never repeats one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tether import Context, activity

CALLS: Counter[str] = Counter()
KEYS: list[str] = []


def reset() -> None:
    CALLS.clear()
    KEYS.clear()


async def record(name: str, value: Any = None) -> Any:
    CALLS[name] += 1
    return value


def record_sync(name: str, value: Any = None) -> Any:
    CALLS[name] += 1
    return value


async def boom(message: str) -> None:
    CALLS["boom"] += 1
    raise ValueError(message)


async def slow(seconds: float) -> str:
    CALLS["slow"] += 1
    await asyncio.sleep(seconds)
    return "done"


@activity(idempotent=True)
async def charge_idempotent(amount: int, idempotency_key: str) -> dict[str, Any]:
    CALLS["charge_idempotent"] += 1
    KEYS.append(idempotency_key)
    return {"charged": amount, "key": idempotency_key}


@activity(idempotent=False)  # takes the key for its logs, but the API behind it ignores it
async def charge(amount: int, idempotency_key: str) -> dict[str, Any]:
    CALLS["charge"] += 1
    KEYS.append(idempotency_key)
    return {"charged": amount}


async def every_op(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Uses every ctx operation once, then waits for a signal (forcing a full replay)."""
    a = await ctx.step("async-step", record, "async-step", inp["x"])
    b = await ctx.step("sync-step", record_sync, "sync-step", inp["x"] * 2)
    now = ctx.now().timestamp()
    rnd = ctx.random()
    ctx.log("halfway", a=a)
    await ctx.sleep(0.01)
    p, q = await ctx.gather(
        ctx.step("left", record, "left", 1), ctx.step("right", record, "right", 2)
    )
    child = await ctx.spawn(child_double, {"n": a})
    c = await child
    try:
        await ctx.step("failing", boom, "nope")
        failed = None
    except Exception as exc:  # ActivityError, identical live and on replay
        failed = str(exc)
    signal = await ctx.wait_for("go")
    return {"a": a, "b": b, "now": now, "rnd": rnd, "p": p, "q": q, "c": c, "failed": failed,
            "signal": signal}


async def child_double(ctx: Context, inp: dict[str, Any]) -> int:
    return int(await ctx.step("double", record, "double", inp["n"] * 2))


async def sequential(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.step(f"s{i % 2}", record, "seq", i)
    return total


async def uses_charge(ctx: Context, inp: Any) -> Any:
    return await ctx.step("charge", charge, 10)


async def uses_idempotent_charge(ctx: Context, inp: Any) -> Any:
    return await ctx.step("charge", charge_idempotent, 10)


async def keyed_charge(amount: int, idempotency_key: str) -> dict[str, Any]:
    CALLS["keyed_charge"] += 1
    KEYS.append(idempotency_key)
    return {"charged": amount}


async def uses_keyed_charge(ctx: Context, inp: Any) -> Any:
    return await ctx.step("charge", keyed_charge, 10)


async def long_timer(ctx: Context, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "woke"


async def waits_then_steps(ctx: Context, inp: Any) -> Any:
    await ctx.step("before", record, "before")
    got = await ctx.wait_for("go", timeout=inp.get("timeout") if inp else None)
    await ctx.step("after", record, "after")
    return got


async def recursive(ctx: Context, depth: int) -> int:
    child = await ctx.spawn(recursive, depth + 1)
    return int(await child) + 1


async def tree_parent(ctx: Context, inp: Any) -> Any:
    kids = [await ctx.spawn(tree_child, i) for i in range(3)]
    return await ctx.gather(*(k.result() for k in kids))


async def tree_child(ctx: Context, i: int) -> Any:
    return await ctx.wait_for("never")


async def raises(ctx: Context, inp: Any) -> Any:
    raise RuntimeError("the agent broke")


async def returns_unserializable(ctx: Context, inp: Any) -> Any:
    return object()


async def changed_a(ctx: Context, inp: Any) -> Any:
    await ctx.step("fetch", record, "fetch")
    return await ctx.wait_for("go")


async def changed_b(ctx: Context, inp: Any) -> Any:
    """Same shape as changed_a but the first step was renamed: a non-deterministic edit."""
    await ctx.step("download", record, "download")
    return await ctx.wait_for("go")


async def gather_with_failure(ctx: Context, inp: Any) -> Any:
    return await ctx.gather(ctx.step("slow", slow, 5.0), ctx.step("boom", boom, "branch failed"))


async def long_step(ctx: Context, seconds: float) -> Any:
    return await ctx.step("slow", slow, seconds)


async def timeout_step(ctx: Context, inp: Any) -> Any:
    try:
        await ctx.step("slow", slow, 2.0, timeout=0.05)
    except Exception as exc:
        return str(exc)
    return "no timeout"


async def flags_and_notes(ctx: Context, inp: Any) -> Any:
    ctx.annotate("policy", {"decision": "allow"})
    ctx.flag("called a honeypot", tool="delete_all")
    await ctx.step("work", record, "work")
    got = await ctx.wait_for("go")
    return got


async def pure_steps(ctx: Context, n: int) -> Any:
    messages: list[str] = []
    for i in range(n):
        messages.append(await ctx.step("node", record, "node", f"m{i}", pure=True))
    got = await ctx.wait_for("go")
    return {"messages": messages, "got": got}


def slow_sync(seconds: float) -> str:
    import time as _time

    CALLS["slow_sync"] += 1
    _time.sleep(seconds)
    return "done"


async def sync_timeout_step(ctx: Context, inp: Any) -> Any:
    try:
        await ctx.step("slow", slow_sync, 0.3, timeout=0.05)
    except Exception as exc:
        return str(exc)
    return "no timeout"
