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
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tether.agents.governed import Governed
from tether.models import Message, Model, ToolCall, ToolDefinition
from tether.runtime.effects.model_verdict import rejected_replies
from tether.runtime.errors import TetherError
from tether.tools import Tool, ToolRegistry

if TYPE_CHECKING:
    from tether.guards import Guards

Mode = Literal["auto", "native", "json"]
MAX_PARALLEL_CALLS = 4
TRUNCATED = (
    "Your reply was cut off because it was too long. Reply again, shorter: one tool call with "
    "short arguments, or a brief final answer."
)
# Small models often repeat a call they already made; they move on sooner when told so.
REPEATED = (
    "\n[You made this exact call before, at step {step}: calling it again gives the same "
    "result. Use what you have, or try something different.]"
)

SYSTEM_PROMPT = """\
You solve the user's task step by step, using tools.
At each step, think briefly about what you still need, then either call tools or give the final \
answer.
- Use tools to get facts and to calculate; never guess a number a tool can give you.
- When several calls do not depend on each other, make them in the same step.
- A tool result that starts with ERROR explains what went wrong: fix the call or try another way.
- Give the final answer only when you have everything you need, and base it on the tool results."""

NATIVE_FORMAT = """\
Before calling tools, you may state your reasoning in one or two sentences.
When you are done, reply with the final answer as plain text and no tool call."""

JSON_FORMAT = """\
Reply with exactly one JSON object per step, in one of these two forms:
{"thought": "<what you need next and why>", "tool_calls": [{"name": "<tool>", "arguments": {...}}]}
{"thought": "<why you can answer now>", "final_answer": "<the answer for the user>"}
Tool results come back in the next message as "Observations"."""


class ReActError(TetherError):
    """Base class for errors of the ReAct strategy."""


class MaxStepsExceeded(ReActError):
    """The agent used all its steps without giving a final answer."""

    def __init__(self, max_steps: int, trajectory: list[dict[str, Any]]) -> None:
        self.max_steps = max_steps
        self.trajectory = trajectory
        calls = [c for s in trajectory for c in s.get("calls", [])]
        last = ""
        if calls:
            c = calls[-1]
            last = f"; last call {c['tool']}({json.dumps(c['arguments'])[:120]}) -> " + (
                str(c["observation"])[:120]
            )
        super().__init__(
            f"ReAct gave no final answer within max_steps={max_steps} "
            f"({len(calls)} tool call(s){last}). Raise max_steps, give the model better tools "
            "or examples, or simplify the goal."
        )


class RepeatedCallLimit(ReActError):
    """The model kept proposing one identical call although each repeat was pointed out.

    Small models loop this way (the same lookup five times) until ``max_steps`` runs out; this
    stops the run at the first sign, before the repeat runs, and says what was repeated."""

    def __init__(self, call: str, steps: list[int], trajectory: list[dict[str, Any]]) -> None:
        self.call = call
        self.steps = steps
        self.trajectory = trajectory
        made = ", ".join(str(s) for s in steps[:-1])
        super().__init__(
            f"ReAct stopped at step {steps[-1]}: the model proposed {call} for the "
            f"{len(steps)}{_ordinal(len(steps))} time (before at step(s) {made}), although told "
            "it repeats itself. Give the model a worked example (examples=), clearer tools or "
            "goal, or raise max_repeats (None turns this check off).")


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@dataclass(frozen=True)
class ExampleStep:
    """One step of a few-shot episode: a thought, the calls made and what they returned."""

    thought: str
    calls: Sequence[tuple[str, dict[str, Any]]]
    observations: Sequence[str]


@dataclass(frozen=True)
class ReActExample:
    """A complete episode shown to the model before the real goal."""

    goal: str
    steps: Sequence[ExampleStep]
    answer: str
    answer_thought: str = "I have everything I need."


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


@dataclass
class _Plan:
    thought: str
    calls: list[ToolCall]
    answer: str | None
    assistant: Message
    #: what to tell the model when the reply is neither calls nor an answer
    nudge: str = "Your reply was empty. Call a tool or give the final answer."
    #: replies validation refused (and asked again) before this one: {"reply", "errors"}
    rejected: list[dict[str, Any]] = field(default_factory=list)


EventSink = Callable[[ReActEvent], None]


def _registry(tools: ToolRegistry | Sequence[Tool]) -> ToolRegistry:
    return tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)


def inline_refs(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Replace local ``$ref``s by their ``$defs`` so the schema can be nested in another one.

    Recursive definitions are cut at depth 8 (``{}`` accepts anything); tool argument validation
    still checks the real schema.
    """
    if defs is None and isinstance(schema, dict):
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        schema = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    defs = defs or {}
    if isinstance(schema, list):
        return [inline_refs(s, defs, depth) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
        if depth >= 8:
            return {}
        target = defs.get(ref.rsplit("/", 1)[-1], {})
        merged = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
        return inline_refs(merged, defs, depth + 1)
    return {k: inline_refs(v, defs, depth) for k, v in schema.items()}


def step_schema(definitions: Sequence[ToolDefinition]) -> dict[str, Any]:
    """The JSON-mode reply schema: a thought plus tool calls (one variant per tool) or an answer."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": d.name}, "arguments": inline_refs(d.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for d in definitions
    ]
    answer = {
        "type": "object",
        "properties": {"thought": {"type": "string"}, "final_answer": {"type": "string"}},
        "required": ["thought", "final_answer"],
        "additionalProperties": False,
    }
    if not variants:
        return answer
    act = {
        "type": "object",
        "properties": {
            "thought": {"type": "string"},
            "tool_calls": {
                "type": "array",
                "items": variants[0] if len(variants) == 1 else {"anyOf": variants},
                "minItems": 1,
                "maxItems": MAX_PARALLEL_CALLS,
            },
        },
        "required": ["thought", "tool_calls"],
        "additionalProperties": False,
    }
    return {"anyOf": [act, answer]}


def _tool_list(definitions: Sequence[ToolDefinition]) -> str:
    lines = ["Tools:"]
    for d in definitions:
        lines.append(
            f"- {d.name}: {d.description or '(no description)'}\n  arguments: "
            + json.dumps(inline_refs(d.parameters), separators=(",", ":"))
        )
    return "\n".join(lines)


def _observations_text(calls: Sequence[ToolCall], observations: Sequence[str]) -> str:
    lines = ["Observations:"]
    for i, (c, obs) in enumerate(zip(calls, observations, strict=True), start=1):
        lines.append(f"{i}. {c.name}({json.dumps(c.arguments)}) -> {obs}")
    return "\n".join(lines)


def example_messages(examples: Sequence[ReActExample], mode: str) -> list[Message]:
    """Render few-shot episodes as conversation turns in the protocol of ``mode``."""
    out: list[Message] = []
    for n, ex in enumerate(examples, start=1):
        out.append(Message.user(ex.goal))
        for s, step in enumerate(ex.steps, start=1):
            calls = [
                ToolCall(id=f"example{n}_{s}_{i}", name=name, arguments=dict(args))
                for i, (name, args) in enumerate(step.calls)
            ]
            if mode == "json":
                payload = {"thought": step.thought,
                           "tool_calls": [{"name": c.name, "arguments": c.arguments}
                                          for c in calls]}
                out.append(Message.assistant(json.dumps(payload)))
                out.append(Message.user(_observations_text(calls, list(step.observations))))
            else:
                out.append(Message.assistant(step.thought or None, calls))
                for c, obs in zip(calls, step.observations, strict=True):
                    out.append(Message.tool(c.id, obs, name=c.name))
        if mode == "json":
            out.append(Message.assistant(json.dumps(
                {"thought": ex.answer_thought, "final_answer": ex.answer})))
        else:
            out.append(Message.assistant(ex.answer))
    return out


def build_prompt(
    goal: str,
    definitions: Sequence[ToolDefinition],
    *,
    mode: str,
    system: str | None = None,
    examples: Sequence[ReActExample] = (),
) -> list[Message]:
    """The opening conversation: system prompt, few-shot episodes, then the goal."""
    parts = [system or SYSTEM_PROMPT]
    if mode == "json":
        parts += [_tool_list(definitions), JSON_FORMAT]
    else:
        parts.append(NATIVE_FORMAT)
    if examples:
        parts.append(
            "The first conversation(s) below are worked examples of the method; then comes the "
            "real task. Use only the tools listed for you, and never reuse numbers from the "
            "examples: get the figures for the real task from the tools."
        )
    return [
        Message.system("\n\n".join(parts)),
        *example_messages(examples, mode),
        Message.user(goal),
    ]


async def _plan(
    gov: Governed,
    model: Model,
    messages: list[Message],
    definitions: list[ToolDefinition],
    mode: str,
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    step: int,
    pinned: int,
) -> _Plan:
    if mode == "json":
        response = await gov.model(model, messages, output_schema=schema, pinned=pinned,
                                   **params)
        data = response.output if isinstance(response.output, dict) else {}
        thought = str(data.get("thought") or "")
        calls: list[ToolCall] = []
        for i, c in enumerate(data.get("tool_calls") or []):
            if isinstance(c, dict):
                args = c.get("arguments")
                calls.append(ToolCall(id=f"step{step}_{i}", name=str(c.get("name", "")),
                                      arguments=args if isinstance(args, dict) else {}))
        answer = data.get("final_answer")
        return _Plan(thought, calls, None if calls else str(answer or ""),
                     Message.assistant(response.text or json.dumps(data)),
                     rejected=rejected_replies(response))
    response = await gov.model(model, messages, tools=definitions, pinned=pinned, **params)
    calls = list(response.tool_calls)
    refused = rejected_replies(response)
    if calls:
        return _Plan((response.text or "").strip(), calls, None, response.to_message(),
                     rejected=refused)
    if response.finish_reason == "length":
        # cut off mid-reply (often a tool call that never closed): not an answer
        return _Plan("", [], None, response.to_message(), TRUNCATED, rejected=refused)
    return _Plan("", [], (response.text or "").strip(), response.to_message(), rejected=refused)


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

    def record(entry: dict[str, Any], plan: _Plan) -> None:
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
        plan = await _plan(gov, model, messages, definitions, chosen, schema, params, step,
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
            messages.append(Message.user(_observations_text(calls, observations)))
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
