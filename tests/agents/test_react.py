"""ReAct on the real runtime (SQLite journal) with the scripted model."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tether import Tether
from tether.agents import (
    ExampleStep,
    ReActAgent,
    ReActError,
    ReActExample,
    build_prompt,
    react,
    step_schema,
)
from tether.models import Message, ScriptedCall, ScriptedModel, ToolDefinition, tool_call
from tether.tools import tool

from . import agents_react as A

GOAL = "How many people per km2 live in Norway and in Japan?"


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


async def replay_only(tether: Tether, run_id: str) -> Any:
    """Re-execute purely from the journal: anything live would raise (see Tether.replay)."""
    return await tether.replay(run_id, A.react_agent)


def _native_script() -> ScriptedModel:
    return ScriptedModel([
        [tool_call("lookup", {"country": "Norway"}), tool_call("lookup", {"country": "Japan"})],
        {"text": "Now divide population by area for both.",
         "tool_calls": [tool_call("divide", {"a": 5_500_000, "b": 385_000}, id="d1"),
                        tool_call("divide", {"a": 124_000_000, "b": 378_000}, id="d2")],
         "finish_reason": "tool_calls"},
        "Norway: 14.29 people/km2; Japan: 328.04 people/km2.",
    ])


async def test_native_react_parallel_tools_then_answer(tether: Tether) -> None:
    model = _native_script()
    A.SETUP.update(model=model)
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "succeeded", rec.error
    out = rec.result
    assert out["answer"] == "Norway: 14.29 people/km2; Japan: 328.04 people/km2."
    assert (out["steps"], out["tool_calls"]) == (3, 4)
    assert A.CALLS == {"lookup": 2, "divide": 2}
    step1, step2, final = out["trajectory"]
    assert [c["observation"] for c in step1["calls"]] == [
        '{"population":5500000,"area_km2":385000}', '{"population":124000000,"area_km2":378000}'
    ]
    assert step2["thought"] == "Now divide population by area for both."
    assert [c["observation"] for c in step2["calls"]] == ["14.29", "328.04"]
    assert final == {"step": 3, "thought": "", "answer": out["answer"]}

    # what the model saw: tool definitions, then each observation as a tool message
    first, second, third = model.calls
    assert [t.name for t in first.tools] == ["divide", "lookup"]
    assert first.messages[0].role == "system"
    assert "step by step" in (first.messages[0].content or "")
    assert first.messages[-1] == Message.user(GOAL)
    tool_msgs = [m for m in second.messages if m.role == "tool"]
    assert [(m.name, m.content) for m in tool_msgs] == [
        ("lookup", '{"population":5500000,"area_km2":385000}'),
        ("lookup", '{"population":124000000,"area_km2":378000}'),
    ]
    assert tool_msgs[0].tool_call_id == second.messages[-3].tool_calls[0].id
    assert [m.content for m in third.messages if m.role == "tool"][-2:] == ["14.29", "328.04"]

    # the journal: model and tool steps, parallel calls in their own gather branches
    started = [(e.key, e.name) for e in tether.events(rec.id) if e.kind == "step_started"]
    names = [n for _, n in started]
    assert names.count("model:scripted") == 3
    assert sorted(n for n in names if n.startswith("tool:")) == [
        "tool:divide", "tool:divide", "tool:lookup", "tool:lookup"]
    assert len({k for k, n in started if n == "tool:lookup"}) == 2

    # progress events, in order
    kinds = [(e.kind, e.tool) for e in A.EVENTS]
    assert kinds[:4] == [("tool_call", "lookup"), ("tool_call", "lookup"),
                         ("observation", "lookup"), ("observation", "lookup")]
    assert kinds[4] == ("thought", None) and kinds[-1] == ("answer", None)
    assert not any(e.replay for e in A.EVENTS)

    # replay from the journal: same result, the model and the tools are not called again
    A.EVENTS.clear()
    again = await replay_only(tether, rec.id)
    assert again == out
    assert len(model.calls) == 3 and A.CALLS == {"lookup": 2, "divide": 2}
    assert len(A.EVENTS) == 10 and all(e.replay for e in A.EVENTS[:5])
    assert not A.EVENTS[-1].replay  # the journal is used up when the answer is given


async def test_tool_errors_go_back_to_the_model_as_observations(tether: Tether) -> None:
    def script(call: ScriptedCall) -> Any:
        observations = [m for m in call.messages if m.role == "tool"]
        if not observations:
            return tool_call("lookup", {"country": "Atlantis"})
        return f"Sorry: {observations[-1].content}"

    A.SETUP.update(model=ScriptedModel(fn=script))
    rec = await tether.run(A.react_agent, "Population of Atlantis?")
    assert rec.status == "succeeded", rec.error
    obs = rec.result["trajectory"][0]["calls"][0]
    assert obs["ok"] is False
    assert obs["observation"].startswith("ERROR (execution_error): \"no figures for 'Atlantis'")
    assert rec.result["answer"].startswith("Sorry: ERROR (execution_error)")
    assert [e.ok for e in A.EVENTS if e.kind == "observation"] == [False]


async def test_max_steps_raises_a_specific_error(tether: Tether) -> None:
    A.SETUP.update(model=ScriptedModel(fn=lambda call: tool_call("lookup", {"country": "Japan"})),
                   options={"max_steps": 3, "max_repeats": None})  # repeats: test_react_repeats
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "failed"
    assert "MaxStepsExceeded" in (rec.error or "")
    assert "no final answer within max_steps=3 (3 tool call(s); last call lookup(" in (
        rec.error or "")
    assert A.CALLS["lookup"] == 3


async def test_max_steps_error_carries_the_trajectory(tether: Tether) -> None:
    A.SETUP.update(model=ScriptedModel(fn=lambda call: tool_call("divide", {"a": 1, "b": 2})),
                   options={"max_steps": 2})
    rec = await tether.run(A.react_catching, "loop")
    assert rec.status == "succeeded", rec.error
    assert rec.result["max_steps"] == 2
    assert [s["step"] for s in rec.result["trajectory"]] == [1, 2]
    assert rec.result["trajectory"][0]["calls"][0]["observation"] == "0.5"


async def test_a_repeated_call_is_pointed_out_to_the_model(tether: Tether) -> None:
    model = ScriptedModel([
        tool_call("divide", {"a": 5_500_000, "b": 385_000}),
        tool_call("divide", {"b": 385_000, "a": 5_500_000}),  # the same call, keys reordered
        "Norway: 14.29 people/km2.",
    ])
    A.SETUP.update(model=model)
    rec = await tether.run(A.react_agent, GOAL)
    assert rec.status == "succeeded", rec.error
    first, again, _ = rec.result["trajectory"]
    assert first["calls"][0]["observation"] == "14.29"
    note = again["calls"][0]["observation"]
    assert note.startswith("14.29\n[You made this exact call before, at step 1")
    assert model.calls[2].messages[-1].content == note  # what the model read
    assert A.CALLS["divide"] == 2  # advice, not a cache: the tool still ran
    assert await replay_only(tether, rec.id) == rec.result


async def test_empty_reply_is_nudged_not_accepted(tether: Tether) -> None:
    A.SETUP.update(model=ScriptedModel(["", "42"]))
    rec = await tether.run(A.react_agent, "Answer?")
    assert rec.status == "succeeded", rec.error
    assert rec.result["answer"] == "42" and rec.result["steps"] == 2
    model = A.SETUP["model"]
    assert model.calls[1].messages[-1] == Message.user(
        "Your reply was empty. Call a tool or give the final answer.")


async def test_cut_off_reply_is_not_taken_as_the_answer(tether: Tether) -> None:
    cut = {"text": '{"tool_calls": [{"arguments": {"expression": "1 / 2 / 2 / 2',
           "finish_reason": "length"}
    A.SETUP.update(model=ScriptedModel([cut, "0.125"]))
    rec = await tether.run(A.react_agent, "Compute.")
    assert rec.status == "succeeded", rec.error
    assert rec.result["answer"] == "0.125" and rec.result["steps"] == 2
    nudge = A.SETUP["model"].calls[1].messages[-1]
    assert nudge.role == "user" and nudge.content.startswith("Your reply was cut off")


async def test_json_mode_schema_constrained_with_few_shot_examples(tether: Tether) -> None:
    example = ReActExample(
        goal="How dense is Norway?",
        steps=[ExampleStep("I need Norway's figures.", [("lookup", {"country": "Norway"})],
                           ['{"population":5500000,"area_km2":385000}']),
               ExampleStep("Divide.", [("divide", {"a": 5500000, "b": 385000})], ["14.29"])],
        answer="14.29 people per km2.",
    )
    replies = iter([
        {"thought": "Look up Japan.", "tool_calls": [
            {"name": "lookup", "arguments": {"country": "Japan"}}]},
        {"thought": "Divide.", "tool_calls": [
            {"name": "divide", "arguments": {"a": 124000000, "b": 378000}}]},
        {"thought": "Done.", "final_answer": "328.04 people per km2."},
    ])
    model = ScriptedModel(fn=lambda call: json.dumps(next(replies)))
    A.SETUP.update(model=model, options={"mode": "json", "examples": [example]})
    rec = await tether.run(A.react_agent, "How dense is Japan?")
    assert rec.status == "succeeded", rec.error
    assert rec.result["answer"] == "328.04 people per km2."
    assert [s.get("thought") for s in rec.result["trajectory"]] == [
        "Look up Japan.", "Divide.", "Done."]
    assert A.CALLS == {"lookup": 1, "divide": 1}

    first, second, _ = model.calls
    assert first.tools == []  # no native tools: the schema carries them
    schema = first.output_schema
    assert schema is not None
    jsonschema.validate({"thought": "t", "tool_calls": [
        {"name": "lookup", "arguments": {"country": "x"}}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"thought": "t", "tool_calls": [
            {"name": "lookup", "arguments": {"nation": "x"}}]}, schema)
    system = first.messages[0].content or ""
    assert "- lookup: Population and area of a country." in system
    assert '"final_answer"' in system and "worked examples" in system
    # the example episode precedes the goal, in the same JSON protocol
    roles = [m.role for m in first.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                     "user"]
    assert json.loads(first.messages[2].content or "")["tool_calls"][0]["name"] == "lookup"
    assert first.messages[-1].content == "How dense is Japan?"
    assert second.messages[-1].role == "user"
    assert second.messages[-1].content == (
        'Observations:\n1. lookup({"country": "Japan"}) -> '
        '{"population":124000000,"area_km2":378000}'
    )


def test_native_examples_render_as_tool_turns() -> None:
    example = ReActExample("q", [ExampleStep("t", [("lookup", {"country": "Japan"})], ["obs"])],
                           "a")
    msgs = build_prompt("goal", [], mode="native", examples=[example])
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert msgs[2].tool_calls[0].name == "lookup" and msgs[2].content == "t"
    assert msgs[3].tool_call_id == msgs[2].tool_calls[0].id and msgs[3].content == "obs"
    assert msgs[4].content == "a"


def test_step_schema_inlines_defs_for_nesting() -> None:
    from pydantic import BaseModel

    class Point(BaseModel):
        x: float
        y: float

    @tool
    def dist(a: Point, b: Point) -> float:
        """Distance."""
        return 0.0

    schema = step_schema([ToolDefinition.model_validate(dist.definition())])
    assert "$ref" not in json.dumps(schema)
    jsonschema.validate({"thought": "t", "tool_calls": [
        {"name": "dist", "arguments": {"a": {"x": 0, "y": 0}, "b": {"x": 1, "y": 1}}}]}, schema)
    jsonschema.validate({"thought": "t", "final_answer": "1"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"thought": "t", "tool_calls": [
            {"name": "dist", "arguments": {"a": {"x": 0}, "b": {"x": 1, "y": 1}}}]}, schema)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"goal": "  "}, "non-empty goal"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"tools": []}, "at least one tool"),
        ({"mode": "xml"}, "unknown ReAct mode 'xml'"),
    ],
)
async def test_bad_arguments_are_specific_errors(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"goal": "g", "model": ScriptedModel(["x"]), "tools": A.registry}
    args.update(kwargs)
    goal = args.pop("goal")
    with pytest.raises(ReActError, match=message):
        await react(None, goal, **args)


async def test_react_agent_bundle(tether: Tether) -> None:
    agent = ReActAgent(model=ScriptedModel(["fine"]), tools=A.registry, max_steps=1)
    A.SETUP.update(model=agent.model, options={"max_steps": agent.max_steps})
    rec = await tether.run(A.react_agent, "hi")
    assert rec.status == "succeeded" and rec.result["answer"] == "fine"
