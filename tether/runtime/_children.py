"""Child runs and concurrent branches: `ctx.spawn`, joining a `ChildHandle`, and `ctx.gather`.

A child is a run of its own, created exactly once in the same write that journals its spawn; a
parent joins it durably (suspending until it has finished). `gather` runs awaitables as branches
with their own key scopes, with structured concurrency: a failing branch cancels its siblings,
while branches that must wait let the others go as far as they can. `Context` documents these
operations and calls the functions here, handing itself over as a `RunView`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tether.store import RunRecord, dumps

from . import ops
from ._keys import _Scope, _scope
from ._views import RunView
from .errors import ChildFailed, DepthLimitExceeded, Drain, InDoubt, NotSerializable, Suspend
from .interceptors import Effect
from .refs import agent_ref
from .tenants import check_tenant

# Cancellation message gather uses when a branch failed: siblings' interrupted steps are then
# journaled as cancelled (the runtime chose to stop them), not left in doubt.
SIBLING_FAILED = "tether: a sibling branch failed"
# Outcomes that stop a branch without failing the gather: the others go as far as they can.
_PAUSES = (Suspend, Drain, InDoubt)


class ChildHandle:
    """A spawned child run. `await handle` (or `await handle.result()`) joins it durably."""

    def __init__(self, ctx: RunView, child_id: str) -> None:
        self._ctx = ctx
        self.id = child_id

    def result(self) -> Awaitable[Any]:
        return join(self._ctx, self.id)

    def __await__(self) -> Any:
        return join(self._ctx, self.id).__await__()

    def __repr__(self) -> str:
        return f"ChildHandle({self.id!r})"


async def spawn(ctx: RunView, agent: Callable[..., Any] | str, input: Any, *,
                tenant: str | None, options: dict[str, Any] | None) -> ChildHandle:
    """`Context.spawn`, which documents it."""
    ref = agent_ref(agent)
    key = ctx._next_key()
    events = ctx._recorded(key, "spawn", ref)
    if events:
        last = events[-1]
        effect = Effect("spawn", ref, key, (input,), {"options": options or {}})
        if last.kind == "child_rejected":
            error = DepthLimitExceeded(ctx.depth, int(last.data["limit"]), ctx.run_id)
            await ctx._after(effect, None, error, True)
            raise error
        await ctx._after(effect, last.data["child_id"], None, True)
        return ChildHandle(ctx, last.data["child_id"])
    if ctx.depth + 1 > ctx.max_depth:
        ctx._append("child_rejected", key, ref, {"limit": ctx.max_depth})
        error = DepthLimitExceeded(ctx.depth, ctx.max_depth, ctx.run_id)
        await ctx._after(Effect("spawn", ref, key, (input,)), None, error, False)
        raise error
    try:
        dumps(input)
    except TypeError as exc:
        raise NotSerializable(f"the input of child agent {ref}", str(exc)) from exc
    if tenant is not None:
        check_tenant(tenant, "ctx.spawn(tenant=...)")
    effect = Effect("spawn", ref, key, (input,), {"options": dict(options or {})})
    await ctx._before(effect)
    # interceptors may narrow the child's options (the guards clamp its budget to what the
    # parent has left); what else they put in the meta is journaled with the spawn
    child_options = {k: v for k, v in ctx.options.items() if k not in ("in_doubt",)}
    child_options.update(effect.meta.get("options") or {})
    noted = {k: v for k, v in effect.meta.items() if k != "options"}
    child_id = f"{ctx.run_id}.{key.replace(':', '_')}"
    child = RunRecord(
        id=child_id, agent=ref, status="queued", input=input,
        tenant=tenant or ctx.tenant, parent_id=ctx.run_id,
        root_id=ctx.run.root_id or ctx.run_id, depth=ctx.depth + 1,
        spec_version=ctx.run.spec_version, options=child_options,
    )
    event = ctx._new_event("child_spawned", key, ref,
                           {"child_id": child_id, **({"meta": noted} if noted else {})})
    await ctx._write_durable([event], ops.create_run(child))
    await ctx._after(effect, child_id, None, False)
    return ChildHandle(ctx, child_id)


async def join(ctx: RunView, child_id: str) -> Any:
    """Wait for a child's outcome: its result, or `ChildFailed`; suspends while it runs."""
    key = ctx._next_key()
    events = ctx._recorded(key, "join", child_id)
    if events:
        return _child_outcome(child_id, events[-1].data)
    child = ctx.store.get_run(child_id)
    if child is None or child.finished:
        data = {
            "status": child.status if child else "failed",
            "result": child.result if child else None,
            "error": (child.error or child.reason) if child else "child run vanished",
        }
        ctx._append("child_completed", key, child_id, data)
        return _child_outcome(child_id, data)
    raise Suspend(f"waiting for child run {child_id}", children=(child_id,))


async def gather(ctx: RunView, *aws: Awaitable[Any]) -> list[Any]:
    """`Context.gather`, which documents it."""
    key = ctx._next_key()  # a position only: gather itself writes nothing

    async def branch(index: int, aw: Awaitable[Any]) -> Any:
        _scope.set(_Scope(f"{key}:{index}."))
        return await aw

    tasks = [asyncio.ensure_future(branch(i, aw)) for i, aw in enumerate(aws)]
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if t.exception() is not None
                      and not isinstance(t.exception(), _PAUSES)]
            if failed:
                for t in pending:
                    t.cancel(SIBLING_FAILED)
                await asyncio.gather(*pending, return_exceptions=True)
                first = min(failed, key=tasks.index)
                raise first.exception()  # type: ignore[misc]
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcomes = [t.exception() for t in tasks]
    if any(isinstance(e, Drain) for e in outcomes):
        raise Drain()
    doubts = [e for e in outcomes if isinstance(e, InDoubt)]
    if doubts:  # a human decides one step at a time; the others are asked for next
        raise doubts[0]
    suspends = [e for e in outcomes if isinstance(e, Suspend)]
    if suspends:
        raise Suspend.merge(suspends)
    return [t.result() for t in tasks]


def _child_outcome(child_id: str, data: dict[str, Any]) -> Any:
    if data["status"] == "succeeded":
        return data.get("result")
    raise ChildFailed(child_id, data["status"], data.get("error"))
