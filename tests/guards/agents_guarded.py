"""Agents and tools for the end-to-end guard tests (importable by reference from workers).

Module globals (the scripted model, the guards, the execution log) are set by each test; the
tools record every real execution in EXECUTED so tests can prove what never ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tether.agents import ReActAgent
from tether.agents import react as builtin_react
from tether.guards import Guards
from tether.models import ScriptedModel
from tether.models.messages import Message
from tether.tools import ToolRegistry, tool

EXECUTED: list[tuple[str, dict[str, Any]]] = []
STATE: dict[str, Any] = {"model": None, "guards": None, "active": 0, "max_active": 0,
                         "ledger": None}


def _did(name: str, args: dict[str, Any]) -> None:
    """Record a real execution: in EXECUTED and, when a test set one, as a line of a ledger file
    (side effects counted outside the process's memory)."""
    EXECUTED.append((name, args))
    if STATE.get("ledger"):
        with open(STATE["ledger"], "a", encoding="utf-8") as fh:
            fh.write(f"{name}\n")

registry = ToolRegistry()


@registry.register
@tool(side_effect="read")
def search(q: str) -> str:
    """Search the web."""
    _did("search", {"q": q})
    return f"results for {q}"


@registry.register
@tool(side_effect="read")
def read_file(path: str) -> str:
    """Read a file."""
    _did("read_file", {"path": path})
    return "contents"


@registry.register
@tool(side_effect="write")
def write_file(path: str, content: str) -> str:
    """Write a file."""
    _did("write_file", {"path": path, "content": content})
    return "written"


@registry.register
@tool(side_effect="read")
def sql_query(query: str) -> list[int]:
    """Run SQL."""
    _did("sql_query", {"query": query})
    return [1]


@registry.register
@tool(side_effect="write")
def send_email(to: str, body: str) -> str:
    """Send an e-mail."""
    _did("send_email", {"to": to, "body": body})
    return "sent"


@registry.register
@tool(side_effect="write")
def refund(card: str, amount: float) -> str:
    """Refund to a card."""
    _did("refund", {"card": card, "amount": amount})
    return "refunded"


@registry.register
@tool(side_effect="write")
def transfer(to: str, amount: float) -> str:
    """Transfer money."""
    _did("transfer", {"to": to, "amount": amount})
    return "transferred"


@registry.register
@tool(side_effect="destructive")
def delete_all() -> str:
    """Delete everything (a honeypot: must never really run)."""
    _did("delete_all", {})
    return "deleted"


@registry.register
@tool(side_effect="destructive")
def shutdown() -> str:
    """Shut the system down (a honeypot)."""
    _did("shutdown", {})
    return "down"


@registry.register
@tool(side_effect="read")
def crm_lookup(customer: str) -> str:
    """Look a customer up in the CRM (its answer carries personal data)."""
    _did("crm_lookup", {"customer": customer})
    return (f"{customer}: Jane Doe, e-mail jane.doe@corp.example, phone +1 415 555 0134, "
            "card 4111 1111 1111 1111")


@registry.register
@tool(side_effect="read")
def flaky(n: int) -> str:
    """Always fails."""
    _did("flaky", {"n": n})
    raise ConnectionError("upstream refused the connection")


@registry.register
@tool(side_effect="read")
def wobbly(n: int) -> str:
    """Fails on its first two executions, then works."""
    _did("wobbly", {"n": n})
    if sum(1 for name, _ in EXECUTED if name == "wobbly") <= 2:
        raise ConnectionError("upstream refused the connection")
    return "finally"


def reset(model: ScriptedModel, guards: Guards, ledger: str | None = None) -> None:
    EXECUTED.clear()
    STATE.update(model=model, guards=guards, active=0, max_active=0, ledger=ledger)


async def react(ctx: Any, goal: dict[str, Any]) -> dict[str, Any]:
    """A minimal ReAct loop: everything the model proposes goes through the guards."""
    guards: Guards = STATE["guards"]
    model: ScriptedModel = STATE["model"]
    messages = [Message.system("You are a careful assistant."), Message.user(goal["task"])]
    observations: list[dict[str, Any]] = []
    for _ in range(goal.get("max_turns", 200)):
        response = await guards.model(ctx, model, messages, validate=False)
        if not response.tool_calls:
            return {"answer": response.text, "observations": observations}
        messages.append(response.to_message())
        for call in response.tool_calls:
            result = await guards.tool(ctx, call.name, call.arguments)
            observations.append(result.model_dump(mode="json"))
            text = str(result.output) if result.ok else f"ERROR: {result.error.message}"  # type: ignore[union-attr]
            messages.append(Message.tool(call.id, text))
    return {"answer": None, "observations": observations}


async def propose(ctx: Any, calls: list[list[Any]]) -> list[dict[str, Any]]:
    """A hostile model's proposals, `[tool, arguments]` each (arguments exactly as given: a
    dict, a JSON text, anything), made through the gateway of the guards in STATE."""
    guards: Guards = STATE["guards"]
    return [(await guards.tool(ctx, name, args)).model_dump(mode="json") for name, args in calls]


async def direct_call(ctx: Any, call: list[Any]) -> dict[str, Any]:
    """`[tool, arguments]` called with ctx.tool on the guards' own registry, past the gateway."""
    guards: Guards = STATE["guards"]
    return (await ctx.tool(guards.tools, call[0], call[1])).model_dump(mode="json")


async def direct(ctx: Any, goal: dict[str, Any]) -> Any:
    """Agent code that bypasses the gateway and calls ctx.tool itself."""
    return (await ctx.tool(registry, goal["tool"], goal.get("args", {}))).model_dump(mode="json")


async def forker(ctx: Any, depth: int) -> int:
    """Spawns itself forever: a fork bomb."""
    child = await ctx.spawn(forker, depth + 1)
    return int(await child)


async def busy(ctx: Any, n: int) -> int:
    STATE["active"] += 1
    STATE["max_active"] = max(STATE["max_active"], STATE["active"])
    try:
        await asyncio.sleep(0.002)
    finally:
        STATE["active"] -= 1
    return n


async def stepper(ctx: Any, n: int) -> int:
    """Runs plain steps forever: a runaway on the step budget."""
    for i in range(n):
        await ctx.step("work", lambda i=i: i)
    return n


async def leaf(ctx: Any, i: int) -> int:
    return i


async def spawner(ctx: Any, n: int) -> list[int]:
    """Spawns and joins children one after another (each join suspends and replays)."""
    out = []
    for i in range(n):
        child = await ctx.spawn(leaf, i)
        out.append(int(await child))
    return out


async def approved_then_direct(ctx: Any, goal: dict[str, Any]) -> dict[str, Any]:
    """An approved call through the gateway, a pause, then the same call made directly: the
    approval covered the first call only."""
    from tether.guards import ActionDenied

    guards: Guards = STATE["guards"]
    first = await guards.tool(ctx, "refund", goal["args"])
    await ctx.wait_for("go")
    try:
        second = await ctx.tool(registry, "refund", goal["args"])
    except ActionDenied as exc:
        return {"first": first.ok, "second": str(exc)}
    return {"first": first.ok, "second": second.ok}


async def twin_proposals(ctx: Any, goal: dict[str, Any]) -> list[dict[str, Any]]:
    """The same call proposed twice at once (two branches of a gather), approved separately."""
    guards: Guards = STATE["guards"]
    results = await ctx.gather(guards.tool(ctx, "refund", goal["args"]),
                               guards.tool(ctx, "refund", goal["args"]))
    return [r.model_dump(mode="json") for r in results]


# ------------------------------------------------------------ the built-in ReAct strategy
async def react_under_run_guards(ctx: Any, goal: dict[str, Any]) -> dict[str, Any]:
    """`tether.agents.react` with no `guards=`: it uses the guards the run executes under
    (`ctx.guards`, set here as a worker would from the run's declared guards)."""
    ctx.guards = STATE["guards"]
    return await builtin_react(ctx, goal["task"], model=STATE["model"], tools=registry,
                               max_steps=goal.get("max_steps", 8))


async def react_explicit_guards(ctx: Any, goal: dict[str, Any]) -> dict[str, Any]:
    """`tether.agents.react` given its guards explicitly (`ctx.guards` stays None)."""
    return await builtin_react(ctx, goal["task"], model=STATE["model"], tools=registry,
                               max_steps=goal.get("max_steps", 8), guards=STATE["guards"])


async def react_agent_bundle(ctx: Any, goal: dict[str, Any]) -> dict[str, Any]:
    """`ReActAgent(guards=...)`."""
    agent = ReActAgent(model=STATE["model"], tools=registry, guards=STATE["guards"],
                       max_steps=goal.get("max_steps", 8))
    return await agent(ctx, goal["task"])
