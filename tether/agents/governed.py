"""`Governed`: the one door through which a strategy calls models and tools.

A strategy never calls ``ctx.model`` / ``ctx.tool`` itself; it asks ``Governed(ctx, guards)``.
When the run executes under guards (``guards=`` given, else ``ctx.guards``), every model call goes
through ``Guards.model`` (PII masked, loop interventions applied, thoughts watched) and every tool
call through ``Guards.tool`` (policy, durable approvals, honeypots, circuit breakers, retries,
placeholders unmasked for the tool only), so whatever the guards refuse comes back as a failed
``ToolResult`` the model reads, never as an exception. Without guards it is ``ctx.model`` and
``ctx.tool``, unchanged. Budget and loop halts raise ``RunHalted`` either way: the run ends
``halted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.guards import Guards
    from tether.models import Model, ModelResponse
    from tether.tools import ToolRegistry, ToolResult


class Governed:
    """``ctx`` plus the guards the calls must pass (``None``: none, plain ``ctx`` calls).

    ``guards=None`` means the guards the run executes under, ``ctx.guards``.
    """

    def __init__(self, ctx: Any, guards: Guards | None = None) -> None:
        self.ctx = ctx
        self.guards: Guards | None = guards if guards is not None else getattr(
            ctx, "guards", None)

    @property
    def guarded(self) -> bool:
        return self.guards is not None

    async def model(self, model: Model, messages: Sequence[Any], *, pinned: int = 0,
                    **kwargs: Any) -> ModelResponse:
        """One model call. ``pinned``: how many leading messages (the prompt: system, examples,
        goal) a loop intervention's history trim must keep."""
        if self.guards is None:
            response: ModelResponse = await self.ctx.model(model, list(messages), **kwargs)
            return response
        return await self.guards.model(self.ctx, model, messages, pinned=pinned, **kwargs)

    async def tool(self, registry: ToolRegistry, name: str, arguments: Any) -> ToolResult:
        """One tool call, as the model proposed it; refusals are failed results."""
        if self.guards is None:
            result: ToolResult = await self.ctx.tool(registry, name, arguments)
            return result
        return await self.guards.tool(self.ctx, name, arguments, registry)

    async def tools(self, registry: ToolRegistry,
                    calls: Sequence[tuple[str, Any]]) -> list[ToolResult]:
        """Several calls from one reply, in parallel (``ctx.gather``); results in call order."""
        if len(calls) == 1:
            name, arguments = calls[0]
            return [await self.tool(registry, name, arguments)]
        results: list[ToolResult] = await self.ctx.gather(
            *(self.tool(registry, name, arguments) for name, arguments in calls))
        return results
