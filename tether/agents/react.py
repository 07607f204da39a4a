"""ReAct: think → call tools → observe → … → answer, as a durable agent on ``ctx``.

Every model call is a ``ctx.model`` step and every tool call a ``ctx.tool`` step (several calls
from one reply run in parallel through ``ctx.gather``), so a crashed run resumes from its journal
without paying for a model call or repeating a tool call twice. Tool failures are observations the
model reads, not exceptions; the loop is bounded by ``max_steps`` (one step = one model reply).

Under guards (``guards=``, else the run's ``ctx.guards``) the calls go through them instead
(:class:`~tether.agents.governed.Governed`): ``Guards.model`` masks PII and applies loop
interventions, ``Guards.tool`` decides each proposed call, so a refusal (policy, denied approval,
open circuit breaker) is an observation the model reads, an approval is a durable wait, and a
budget or a persisting loop ends the run ``halted``.

Two prompt modes:

* ``native``: tools are passed as tool definitions; the provider (or the local model's grammar)
  returns tool calls. The reply's text, if any, is the thought.
* ``json``: for models or servers without tool calling, each reply is one JSON object
  ``{"thought", "tool_calls": [{"name", "arguments"}]}`` or ``{"thought", "final_answer"}``,
  requested as structured output with a schema built from the tools (so grammar-constrained
  decoding can enforce it) and described in the prompt.

Few-shot examples (``ReActExample``) show a complete episode before the real goal. Small local
models follow the protocol much better with one; they are included by default for local models.

This module is the loop; the prompt (``_react_prompt``), the reading of a reply
(``_react_reply``) and the errors (``_react_errors``) live beside it and are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tether.agents._react_errors import MaxStepsExceeded, ReActError, RepeatedCallLimit
from tether.agents._react_prompt import (
    JSON_FORMAT,
    MAX_PARALLEL_CALLS,
    NATIVE_FORMAT,
    SYSTEM_PROMPT,
    ExampleStep,
    ReActExample,
    build_prompt,
    example_messages,
    inline_refs,
    observations_text,
    step_schema,
)
from tether.agents._react_reply import TRUNCATED, Plan, plan_step
from tether.agents.governed import Governed
from tether.models import Message, Model, ToolCall, ToolDefinition
from tether.tools import Tool, ToolRegistry

if TYPE_CHECKING:
    from tether.guards import Guards

__all__ = [
    "JSON_FORMAT",
    "MAX_PARALLEL_CALLS",
    "NATIVE_FORMAT",
    "REPEATED",
    "SYSTEM_PROMPT",
    "TRUNCATED",
    "EventSink",
    "ExampleStep",
    "MaxStepsExceeded",
    "Mode",
    "ReActAgent",
    "ReActError",
    "ReActEvent",
    "ReActExample",
    "RepeatedCallLimit",
    "build_prompt",
    "example_messages",
    "inline_refs",
    "react",
    "step_schema",
]

Mode = Literal["auto", "native", "json"]
# Small models often repeat a call they already made; they move on sooner when told so.
REPEATED = (
    "\n[You made this exact call before, at step {step}: calling it again gives the same "
    "result. Use what you have, or try something different.]"
)


@dataclass(frozen=True)
class ReActEvent:
    """Progress, for live display: ``thought``, ``tool_call``, ``observation`` or ``answer``.

    ``replay`` is true while the run is being rebuilt from its journal (nothing is executing).
    """

    kind: str
    step: int
    text: str = ""
    tool: str | None = None
    arguments: Any = None
    ok: bool | None = None
    replay: bool = False


EventSink = Callable[[ReActEvent], None]


def _registry(tools: ToolRegistry | Sequence[Tool]) -> ToolRegistry:
    return tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)


async def react(
    ctx: Any,
    goal: str,
    *,
    model: Model,
    tools: ToolRegistry | Sequence[Tool],
    max_steps: int = 8,
    mode: Mode = "auto",
    system: str | None = None,
    examples: Sequence[ReActExample] | None = None,
    on_event: EventSink | None = None,
    max_observation_chars: int = 4000,
    model_params: dict[str, Any] | None = None,
    guards: Guards | None = None,
    max_repeats: int | None = 3,
) -> dict[str, Any]:
    """Run the ReAct loop toward ``goal`` and return ``{"answer", "steps", "model_calls",
    "tool_calls", "trajectory"}`` (JSON, so it can be a run's result). A step's reply that
    validation refused and asked again is listed in that step's ``"rejected"`` (each
    ``{"reply", "errors"}``) and counted in ``model_calls``, so ``steps`` plus the refused replies
    is the number of model calls the journal holds.

    ``mode="auto"`` uses native tool calling (every provider in ``tether.models`` supports it; the
    local model enforces it with a grammar); ``"json"`` is for servers without tool calling.
    ``examples`` are few-shot episodes that should use your own tools (none are invented).
    ``guards``: the guards every model and tool call goes through; ``None`` means the guards the
    run executes under (``ctx.guards``), if any.
    Raises :class:`MaxStepsExceeded` when ``max_steps`` model replies bring no final answer.
    ``max_repeats``: without guards, the model proposing one identical call (same tool, same
    arguments) for the ``max_repeats``-th time raises :class:`RepeatedCallLimit` before it runs
    (``None``: never); under guards their loop detector decides (an intervention, then a halt).
    """
    if not isinstance(goal, str) or not goal.strip():
        raise ReActError("react needs a non-empty goal string")
    if max_steps < 1:
        raise ReActError(f"max_steps must be >= 1, not {max_steps}")
    if max_repeats is not None and max_repeats < 2:
        raise ReActError(f"max_repeats must be >= 2 or None, not {max_repeats}")
    registry = _registry(tools)
    if len(registry) == 0:
        raise ReActError("react needs at least one tool")
    chosen = "native" if mode == "auto" else mode
    if chosen not in ("native", "json"):
        raise ReActError(f"unknown ReAct mode {mode!r}; use 'auto', 'native' or 'json'")
    definitions = [ToolDefinition.model_validate(d) for d in registry.definitions()]
    schema = step_schema(definitions) if chosen == "json" else None
    messages = build_prompt(goal, definitions, mode=chosen, system=system,
                            examples=list(examples or ()))
    params = dict(model_params or {})
    gov = Governed(ctx, guards)
    pinned = len(messages)  # the prompt survives a loop intervention's history trim
    trajectory: list[dict[str, Any]] = []
    made: dict[str, int] = {}  # each distinct call -> the step it was first made in
    proposed: dict[str, list[int]] = {}  # each distinct call -> every step that proposed it
    n_calls = 0
    n_model_calls = 0  # a step's reply plus the replies validation refused before it

    def record(entry: dict[str, Any], plan: Plan) -> None:
        nonlocal n_model_calls
        n_model_calls += 1 + len(plan.rejected)
        if plan.rejected:  # a refused reply is a model call too: the trajectory says why
            entry["rejected"] = plan.rejected
        trajectory.append(entry)

    def emit(kind: str, step: int, **fields: Any) -> None:
        if on_event is not None:
            replay = bool(getattr(ctx, "replaying", False))
            on_event(ReActEvent(kind=kind, step=step, replay=replay, **fields))

    for step in range(1, max_steps + 1):
        plan = await plan_step(gov, model, messages, definitions, chosen, schema, params, step,
                           pinned)
        messages.append(plan.assistant)
        if plan.thought:
            emit("thought", step, text=plan.thought)
        if not plan.calls:
            if not plan.answer:
                # empty or cut off: tell the model (it costs a step) rather than accept it
                messages.append(Message.user(plan.nudge))
                record({"step": step, "thought": plan.thought, "calls": []}, plan)
                continue
            emit("answer", step, text=plan.answer)
            record({"step": step, "thought": plan.thought, "answer": plan.answer}, plan)
            return {"answer": plan.answer, "steps": step, "model_calls": n_model_calls,
                    "tool_calls": n_calls, "trajectory": trajectory}
        calls = plan.calls[:MAX_PARALLEL_CALLS * 2]
        for c in calls:
            steps = proposed.setdefault(_fingerprint(c), [])
            steps.append(step)
            if max_repeats is not None and not gov.guarded and len(steps) >= max_repeats:
                record({"step": step, "thought": plan.thought, "calls": []}, plan)
                shown = f"{c.name}({json.dumps(c.arguments, sort_keys=True)[:120]})"
                raise RepeatedCallLimit(shown, steps, trajectory)
        for c in calls:
            emit("tool_call", step, tool=c.name, arguments=c.arguments)
        results = await gov.tools(registry, [(c.name, _arguments(c)) for c in calls])
        n_calls += len(calls)
        observations = [_clip(r.observation(), max_observation_chars) for r in results]
        for i, c in enumerate(calls):
            first = made.setdefault(_fingerprint(c), step)
            if first != step:
                observations[i] += REPEATED.format(step=first)
        for c, r, obs in zip(calls, results, observations, strict=True):
            emit("observation", step, tool=c.name, text=obs, ok=r.ok)
        if chosen == "json":
            messages.append(Message.user(observations_text(calls, observations)))
        else:
            for c, obs in zip(calls, observations, strict=True):
                messages.append(Message.tool(c.id, obs, name=c.name))
        record({
            "step": step,
            "thought": plan.thought,
            "calls": [
                {"tool": c.name, "arguments": c.arguments, "ok": r.ok, "observation": obs}
                for c, r, obs in zip(calls, results, observations, strict=True)
            ],
        }, plan)
    raise MaxStepsExceeded(max_steps, trajectory)


def _arguments(call: ToolCall) -> Any:
    """The raw text when the provider could not parse it: the tool layer reports why."""
    return call.raw_arguments if call.raw_arguments is not None else call.arguments


def _fingerprint(call: ToolCall) -> str:
    """The call's identity for repeat detection: the tool and its arguments, key order ignored."""
    return call.name + ":" + json.dumps(_arguments(call), sort_keys=True, default=str)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [truncated, {len(text) - limit} more characters]"


@dataclass
class ReActAgent:
    """Configuration bundle: ``await agent(ctx, goal)`` runs :func:`react` with it.

    Durable runs reference agents by ``module:function``, so wrap it in a module-level function::

        assistant = ReActAgent(model=..., tools=registry)

        async def my_agent(ctx, goal):
            return await assistant(ctx, goal)
    """

    model: Model
    tools: ToolRegistry | Sequence[Tool]
    max_steps: int = 8
    mode: Mode = "auto"
    system: str | None = None
    examples: Sequence[ReActExample] | None = None
    on_event: EventSink | None = None
    max_observation_chars: int = 4000
    model_params: dict[str, Any] = field(default_factory=dict)
    guards: Guards | None = None  # None: the run's guards (ctx.guards), if any
    max_repeats: int | None = 3

    async def __call__(self, ctx: Any, goal: str) -> dict[str, Any]:
        return await react(
            ctx, goal, model=self.model, tools=self.tools, max_steps=self.max_steps,
            mode=self.mode, system=self.system, examples=self.examples, on_event=self.on_event,
            max_observation_chars=self.max_observation_chars, model_params=self.model_params,
            guards=self.guards, max_repeats=self.max_repeats,
        )
