"""The hostile budget tests' agents, tools and guards (`test_hostile_budgets*.py`): what a
hostile agent does to spend more than it was given, as module-level code so that `tether worker`
processes can import it (`tests.guards.agents_hostile_budgets:NAME`).

`spend` records every real execution (in SPENT, and in $TETHER_TEST_LEDGER for worker processes)
so a test proves how many calls really ran, not only what the journal says.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from tether import ChildFailed, Tether
from tether.guards import (
    ActionDenied,
    GuardConfig,
    Guards,
    loads_policy,
    spend_from_events,
)
from tether.models.messages import Message
from tether.tools import ToolRegistry, tool

POLICY = """\
name: hostile-budgets
rules:
  - {id: spend, tools: spend, effect: allow}
"""

SPENT: list[str] = []  # every real execution of the `spend` tool in this process
_SPENT_LOCK = threading.Lock()
STATE: dict[str, Any] = {"guards": None, "model": None}


@tool(side_effect="read")
def spend(tag: str) -> str:
    """Costs one tool call; records that it really ran (here and in $TETHER_TEST_LEDGER)."""
    with _SPENT_LOCK:
        SPENT.append(tag)
    ledger = os.environ.get("TETHER_TEST_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {tag}\n")
    time.sleep(float(os.environ.get("TETHER_TEST_SPEND_S", "0.005")))  # calls overlap
    return f"spent {tag}"


@tool(side_effect="destructive")
def wipe(tag: str) -> str:
    """Never allowed by the policy."""
    SPENT.append("WIPE " + tag)
    return "wiped"


TOOLS = ToolRegistry([spend, wipe])
# for `tether worker` processes (runs declare `guards=tests.guards.agents_hostile_budgets:GUARDS`)
GUARDS = Guards(GuardConfig(policy=loads_policy(POLICY, "hostile-budgets.yaml")), tools=TOOLS)


def fresh_guards(**kw: Any) -> Guards:
    guards = Guards(GuardConfig(policy=loads_policy(POLICY, "hostile-budgets.yaml"), **kw),
                    tools=TOOLS)
    SPENT.clear()
    STATE.update(guards=guards, model=None)
    return guards


def _guards(ctx: Any) -> Guards:
    guards = ctx.guards or STATE["guards"]
    assert isinstance(guards, Guards)
    return guards


# ------------------------------------------------------------------------------ agents
async def gather_gateway(ctx: Any, n: int) -> list[bool]:
    """n model-proposed calls at once, through `Guards.tool`."""
    guards = _guards(ctx)
    results = await ctx.gather(*(guards.tool(ctx, "spend", {"tag": f"g{i}"}) for i in range(n)))
    return [r.ok for r in results]


async def gather_direct(ctx: Any, n: int) -> list[bool]:
    """n calls at once, made by agent code with `ctx.tool` (no gateway)."""
    results = await ctx.gather(*(ctx.tool(TOOLS, "spend", {"tag": f"d{i}"}) for i in range(n)))
    return [r.ok for r in results]


async def sequential(ctx: Any, n: int) -> int:
    """n model-proposed calls, one after the other."""
    guards = _guards(ctx)
    done = 0
    for i in range(n):
        done += (await guards.tool(ctx, "spend", {"tag": f"s{i}"})).ok
    return done


def _work(i: int) -> int:
    SPENT.append(f"step{i}")
    return i


async def gather_steps(ctx: Any, n: int) -> list[int]:
    """n plain steps at once."""
    return list(await ctx.gather(*(ctx.step("work", _work, i) for i in range(n))))


async def gather_models(ctx: Any, n: int) -> list[str]:
    """n model calls at once, through `Guards.model`."""
    guards = _guards(ctx)
    model = STATE["model"]
    responses = await ctx.gather(*(guards.model(ctx, model, [Message.user(f"q{i}")],
                                                validate=False) for i in range(n)))
    return [r.text for r in responses]


async def spender(ctx: Any, spec: dict[str, Any]) -> int:
    """A child: spawns its own children first (if asked), then spends, one call at a time or
    all at once."""
    guards = _guards(ctx)
    if spec.get("children"):
        await fan_out(ctx, {**spec, "children": spec["children"], "grand": 0,
                            "child_budget": spec.get("grand_budget")})
    tags = [f"{ctx.run_id}:{i}" for i in range(spec["calls"])]
    if spec.get("parallel"):
        results = await ctx.gather(*(guards.tool(ctx, "spend", {"tag": t}) for t in tags))
        return sum(r.ok for r in results)
    done = 0
    for tag in tags:
        done += (await guards.tool(ctx, "spend", {"tag": tag})).ok
    return done


async def fan_out(ctx: Any, spec: dict[str, Any]) -> list[Any]:
    """Spawns `children` spenders (all before joining any: they run concurrently), optionally
    with their own `child_budget`, each spawning `grand` grandchildren."""
    options = {"budget": spec["child_budget"]} if spec.get("child_budget") is not None else None
    child_spec = {"calls": spec["calls"], "children": spec.get("grand", 0),
                  "grand_budget": spec.get("grand_budget"), "parallel": spec.get("parallel")}
    handles = [await ctx.spawn(spender, child_spec, options=options)
               for _ in range(spec["children"])]
    return list(await ctx.gather(*(h.result() for h in handles)))


async def leaf(ctx: Any, i: int) -> int:
    return i


async def gather_spawns(ctx: Any, n: int) -> list[int]:
    """n children spawned at once (then joined)."""
    handles = await ctx.gather(*(ctx.spawn(leaf, i) for i in range(n)))
    return list(await ctx.gather(*(h.result() for h in handles)))


async def denied_then_allowed(ctx: Any, n: dict[str, int]) -> int:
    """Direct calls the policy refuses (each refusal is caught), then allowed ones."""
    for i in range(n["denied"]):
        with contextlib.suppress(ActionDenied):
            await ctx.tool(TOOLS, "wipe", {"tag": str(i)})
    done = 0
    for i in range(n["allowed"]):
        done += (await ctx.tool(TOOLS, "spend", {"tag": f"a{i}"})).ok
    return done


def _slow_idempotent(i: int, spec: dict[str, Any]) -> int:
    """Records its start; the step at `crash_at` hangs once (the test kills its worker)."""
    with open(spec["ledger"], "a", encoding="utf-8") as fh:
        fh.write(f"start {i}\n")
    marker = Path(spec["ledger"] + ".hung")
    if i == spec["crash_at"] and not marker.exists():
        marker.write_text("x")
        time.sleep(60)
    return i


async def idempotent_steps(ctx: Any, spec: dict[str, Any]) -> list[int]:
    """Plain idempotent steps: one in doubt after a crash is run again by the next worker."""
    return [await ctx.step("slow", _slow_idempotent, i, spec, idempotent=True)
            for i in range(spec["n"])]


async def parent_of_idempotent(ctx: Any, spec: dict[str, Any]) -> Any:
    return await (await ctx.spawn(idempotent_steps, spec))


async def bad_child_budget(ctx: Any, budget: Any) -> str:
    try:
        await ctx.spawn(spender, {"calls": 1}, options={"budget": budget})
    except ValueError as exc:
        return str(exc)
    return "spawned"


async def model_caller(ctx: Any, spec: dict[str, Any]) -> int:
    """`calls` model calls through `Guards.model`, one after the other; with `pause`, a durable
    sleep after the first (the run suspends and is replayed when it wakes)."""
    guards = _guards(ctx)
    for i in range(spec["calls"]):
        if i == 1 and spec.get("pause"):
            await ctx.sleep(spec["pause"])
        await guards.model(ctx, STATE["model"], [Message.user(f"{ctx.run_id}:q{i}")],
                           validate=False)
    return int(spec["calls"])


async def spawn_into(ctx: Any, spec: dict[str, Any]) -> list[Any]:
    """Spawns `children` model callers one after another into tenant `tenant` (None: the
    parent's own), joining each before the next; a child that failed or halted is reported by
    its error and the next is spawned all the same."""
    out: list[Any] = []
    for _ in range(spec["children"]):
        child = await ctx.spawn(model_caller, {"calls": spec["calls"],
                                               "pause": spec.get("pause")},
                                tenant=spec.get("tenant"))
        try:
            out.append(await child)
        except ChildFailed as exc:
            out.append(str(exc))
    return out


# ----------------------------------------------------------------------------- helpers
def open_tether(db_path: str, guards: Guards, **kw: Any) -> Tether:
    return Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0, **kw)


def tree_of(t: Tether, root_id: str) -> list[Any]:
    return [r for r in t.runs(limit=10_000) if (r.root_id or r.id) == root_id]


def journaled(t: Tether, runs: list[Any], metric: str) -> float:
    return sum(getattr(spend_from_events(t.events(r.id)), metric) for r in runs)


def budget_spend(t: Tether, scope: str) -> dict[str, float]:
    return t.store.get_budget_spend(scope)


ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.guards.agents_hostile_budgets"
