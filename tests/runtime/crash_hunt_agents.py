"""The crash hunt's outside world, tools and agents (`test_crash_hunt_*.py`,
`crash_hunt_support.py` drives them): every side effect appends one line naming a unique token
to a JSON-lines *ledger* outside the journal (one `write(2)` of an `O_APPEND` descriptor, then
`fsync`: a SIGKILL leaves a line whole or absent), so the tests count what happened.

Kills land at exact moments through *gates*: a tool calls `gate(name)` before and after its
effect; when the test created `GATES/<name>.hold`, the first process to reach the gate renames
it to `<name>.reached.<pid>` (so a replacement worker passes straight through) and blocks until
SIGKILLed (or until `<name>.release` appears).

Agents are referenced as `tests.runtime.crash_hunt_agents:<name>` (`MODULE`).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from tether import Context
from tether.guards import (
    GuardConfig,
    Guards,
    KeyRegistry,
    RetryPolicy,
    load_key_registry,
    loads_policy,
)
from tether.tools import ToolRegistry, tool

MODULE = "tests.runtime.crash_hunt_agents"
LEDGER_ENV = "CRASH_HUNT_LEDGER"
GATES_ENV = "CRASH_HUNT_GATES"
DELAY_ENV = "CRASH_HUNT_DELAY_MS"


# -- the outside world ------------------------------------------------------------------------
_lock = threading.Lock()


def _ledger_fd() -> int:
    return os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def do_effect(token: str, key: str | None = None) -> str:
    """Perform one side effect: append `token` to the ledger. With `key` (an idempotency key),
    behave like an API that deduplicates: a key seen before is answered without acting again
    (noted as a `dedup` line)."""
    entry: dict[str, Any] = {"token": token, "pid": os.getpid(), "t": time.time()}
    if key is not None:
        entry["key"] = key
    with _lock:
        fd = _ledger_fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if key is not None and any(e.get("key") == key and not e.get("dedup")
                                       for e in read_ledger(os.environ[LEDGER_ENV])):
                entry["dedup"] = True
            os.write(fd, orjson.dumps(entry) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"did {token}"


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    # a read racing an append may see a prefix of it (reads take no lock): only lines already
    # ended by their newline are whole; the rest is read next time
    *whole, _unfinished = p.read_text().split("\n")
    return [json.loads(line) for line in whole if line.strip()]


def gate(name: str) -> None:
    """Block here (until SIGKILLed) if the test armed this gate; see the module's docstring."""
    gates = os.environ.get(GATES_ENV)
    if not gates:
        return
    hold = Path(gates) / f"{name}.hold"
    try:
        os.rename(hold, Path(gates) / f"{name}.reached.{os.getpid()}")
    except FileNotFoundError:
        return
    release = Path(gates) / f"{name}.release"
    while not release.exists():
        time.sleep(0.005)


def pause() -> None:
    """Up to $CRASH_HUNT_DELAY_MS of work around an effect, so random kills land inside steps
    (before the effect, or after it and before the runtime heard of it)."""
    ms = float(os.environ.get(DELAY_ENV) or 0)
    if ms:
        time.sleep(random.uniform(0, ms) / 1000)


# -- tools ------------------------------------------------------------------------------------
@tool(side_effect="write")
def send(token: str) -> str:
    """A non-idempotent write (an e-mail, a payment without a key): acts on every call."""
    gate(f"{token}.before")
    pause()
    out = do_effect(token)
    pause()
    gate(f"{token}.after")
    return out


@tool(side_effect="read")
def lookup(token: str) -> str:
    """A read (idempotent by default): a crash in it is answered by calling it again."""
    gate(f"{token}.before")
    out = do_effect(token)
    gate(f"{token}.after")
    return out


@tool(side_effect="write")
def charge(token: str, idempotency_key: str) -> str:
    """A write that takes the runtime's idempotency key and deduplicates on it."""
    gate(f"{token}.before")
    pause()
    out = do_effect(token, idempotency_key)
    pause()
    gate(f"{token}.after")
    return out


@tool(side_effect="write")
async def send_async(token: str) -> str:
    """`send` as a coroutine: it runs on the worker's event loop, not in a thread."""
    await asyncio.to_thread(gate, f"{token}.before")
    await asyncio.to_thread(pause)
    out = do_effect(token)
    await asyncio.to_thread(pause)
    await asyncio.to_thread(gate, f"{token}.after")
    return out


@tool(side_effect="write")
def refund(order: str, amount: float) -> str:
    """A write the policy sends for approval (amounts of 100 and more)."""
    gate(f"refund-{order}.before")
    do_effect(f"refund-{order}")
    gate(f"refund-{order}.after")
    return f"REFUNDED {amount} for {order}"


def mark(name: str) -> None:
    """Leave a mark for the test (one more file `GATES/<name>.<unique>`)."""
    gates = os.environ.get(GATES_ENV)
    if gates:
        (Path(gates) / f"{name}.{os.getpid()}.{time.monotonic_ns()}").touch()


@tool(side_effect="write", timeout=0.5)
def slow_send(token: str) -> str:
    """`send` with a 0.5 s timeout (the tool layer's own time bound); marks each call's thread
    entering and leaving."""
    mark(f"{token}.entered")
    try:
        gate(f"{token}.before")
        return do_effect(token)
    finally:
        mark(f"{token}.left")


@tool(side_effect="write", timeout=0.5, retries=1)
def slow_send_retrying(token: str) -> str:
    """`slow_send` with one retry of its own (the tool layer's `retries`)."""
    mark(f"{token}.entered")
    try:
        gate(f"{token}.before")
        return do_effect(token)
    finally:
        mark(f"{token}.left")


@tool(side_effect="write")
def send_unless_broken(token: str) -> str:
    """`send`, failing before its effect while the file GATES/broken exists."""
    if (Path(os.environ[GATES_ENV]) / "broken").exists():
        raise RuntimeError("the mail server is down")
    gate(f"{token}.before")
    out = do_effect(token)
    gate(f"{token}.after")
    return out


TOOLS = ToolRegistry([send, lookup, charge, send_async, refund, slow_send, slow_send_retrying,
                      send_unless_broken])

POLICY = """\
version: 1
name: crash-hunt
rules:
  - id: sends
    tools: [send, lookup, charge, send_async, slow_send, slow_send_retrying, send_unless_broken]
    effect: allow
  - id: refunds
    tools: refund
    effect: approve
"""


def _approvers() -> KeyRegistry:
    path = os.environ.get("TETHER_APPROVERS")
    return load_key_registry(path) if path else KeyRegistry()


GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "crash-hunt.yaml"),
                            approvers=_approvers()), tools=TOOLS)
# the same, retrying failed tool calls (`execution_error`, `timeout`, `http_error`) once
GUARDS_RETRY = Guards(GuardConfig(policy=loads_policy(POLICY, "crash-hunt.yaml"),
                                  retry=RetryPolicy(max_attempts=2, base_delay_s=0.01)),
                      tools=TOOLS)


def tool_ok(token: str, tool_name: str = "send") -> dict[str, Any]:
    """The ToolResult a `send` of `token` journals: what a human resolving it with --skip gives."""
    return {"tool": tool_name, "ok": True, "output": f"did {token}", "error": None}


# -- agents -----------------------------------------------------------------------------------
async def _send(ctx: Context, token: str, name: str = "send") -> str:
    result = await ctx.tool(TOOLS, name, {"token": token})
    assert result.ok, result
    return str(result.output)


async def pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """Sequential non-idempotent sends, one per token."""
    return [await _send(ctx, t, inp.get("tool", "send")) for t in inp["tokens"]]


def send_activity(token: str) -> str:
    """`send` as a plain sync activity for `ctx.step` (not a tool)."""
    gate(f"{token}.before")
    return do_effect(token)


async def step_pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """`pipeline` through `ctx.step` with a sync activity: the runtime's own thread path."""
    return [await ctx.step("send", send_activity, t) for t in inp["tokens"]]


async def tool_results(ctx: Context, inp: dict[str, Any]) -> list[dict[str, Any]]:
    """Each token through `inp["tool"]`, the ToolResults as they came (failures included),
    through the run's guards when it declares some."""
    out = []
    for t in inp["tokens"]:
        if ctx.guards is not None:
            result = await ctx.guards.tool(ctx, inp["tool"], {"token": t}, TOOLS)
        else:
            result = await ctx.tool(TOOLS, inp["tool"], {"token": t})
        out.append(result.model_dump(mode="json"))
    return out


async def fragile(ctx: Context, inp: dict[str, Any]) -> list[str]:
    """Sends, the middle one through `send_unless_broken`; a failed call fails the run."""
    out = [await _send(ctx, f"{inp['tag']}-1")]
    result = await ctx.tool(TOOLS, "send_unless_broken", {"token": f"{inp['tag']}-2"})
    if not result.ok:
        raise RuntimeError(f"could not send: {result.error}")
    out.append(str(result.output))
    out.append(await _send(ctx, f"{inp['tag']}-3"))
    return out


async def keyed_pipeline(ctx: Context, inp: dict[str, Any]) -> list[str]:
    out = []
    for t in inp["tokens"]:
        result = await ctx.tool(TOOLS, "charge", {"token": t})
        assert result.ok, result
        out.append(str(result.output))
    return out


async def signalled(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """send, wait for signal `go`, send a token named after the payload, wait for `go2`, send."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-1")
    payload = await ctx.wait_for("go")
    second = await _send(ctx, f"{tag}-2-{payload}")
    payload2 = await ctx.wait_for("go2")
    third = await _send(ctx, f"{tag}-3-{payload2}")
    return {"out": [first, second, third], "payloads": [payload, payload2]}


async def timed(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """send, a durable timer, send; the time seen after the timer is journaled."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-1")
    before = ctx.now().timestamp()
    await ctx.sleep(inp["sleep"])
    after = ctx.now().timestamp()
    second = await _send(ctx, f"{tag}-2")
    return {"out": [first, second], "slept": after - before}


async def child(ctx: Context, inp: dict[str, Any]) -> str:
    return await _send(ctx, inp["token"])


async def parent(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Spawn one child per token (each sends its token), join them all, then send `final`."""
    tag = inp["tag"]
    first = await _send(ctx, f"{tag}-p0")
    handles = [await ctx.spawn(f"{MODULE}:child", {"token": f"{tag}-c{i}"})
               for i in range(inp["children"])]
    joined = await ctx.gather(*(h.result() for h in handles))
    last = await _send(ctx, f"{tag}-pz")
    return {"first": first, "children": joined, "last": last}


async def busy_parent(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Spawn the children, then send its own token while they run, then join them."""
    tag = inp["tag"]
    handles = [await ctx.spawn(f"{MODULE}:child", {"token": f"{tag}-c{i}"})
               for i in range(inp["children"])]
    mid = await _send(ctx, f"{tag}-mid")
    joined = await ctx.gather(*(h.result() for h in handles))
    return {"mid": mid, "children": joined}


async def governed(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """A send (allowed), then a refund the policy sends for approval, then a send, all through
    the guards the run declares (`GUARDS`)."""
    assert ctx.guards is not None, "the run must declare the crash hunt's GUARDS"
    tag = inp["tag"]
    a = await ctx.guards.tool(ctx, "send", {"token": f"{tag}-1"}, TOOLS)
    r = await ctx.guards.tool(ctx, "refund", {"order": tag, "amount": 250.0}, TOOLS)
    b = await ctx.guards.tool(ctx, "send", {"token": f"{tag}-2"}, TOOLS)
    return {"a": a.output, "refund": r.output, "refund_ok": r.ok, "b": b.output}


async def marathon(ctx: Context, inp: dict[str, Any]) -> dict[str, Any]:
    """Everything at once, for repeated random kills: sends, a keyed charge, a gather of sends,
    a long timer, a signal and two children."""
    tag = inp["tag"]
    out: list[Any] = []
    for i in range(inp["sends"]):
        out.append(await _send(ctx, f"{tag}-s{i}"))
    charged = await ctx.tool(TOOLS, "charge", {"token": f"{tag}-k"})
    out.append(charged.output)
    out.append(await ctx.gather(*(_send(ctx, f"{tag}-g{i}", "send_async") for i in range(3))))
    await ctx.sleep(inp["sleep"])
    out.append(await _send(ctx, f"{tag}-t"))
    payload = await ctx.wait_for("go")
    out.append(await _send(ctx, f"{tag}-w-{payload}"))
    kids = [await ctx.spawn(f"{MODULE}:pipeline", {"tokens": [f"{tag}-c{i}a", f"{tag}-c{i}b"]})
            for i in range(2)]
    out.append(await ctx.gather(*(k.result() for k in kids)))
    out.append(await _send(ctx, f"{tag}-end"))
    return {"out": out}


# -- the lab ----------------------------------------------------------------------------------
