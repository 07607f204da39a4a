"""Model calls through ctx: journaled with request hash, response and usage; replay never calls
the model again and detects a changed request. Real Context + SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.models import models_agents as A
from tether import ActivityError, NonDeterminismError, Tether
from tether.models import (
    Message,
    ModelOutputError,
    ModelResponse,
    ModelServerError,
    RetryModel,
    ScriptedModel,
    Usage,
    request_hash,
    tool_call,
)
from tether.runtime import Context


class Forbidden(ScriptedModel):
    """A model that fails the test if anything calls it."""

    def __init__(self) -> None:
        super().__init__(fn=self._refuse, name="scripted")

    def _refuse(self, call: Any) -> Any:
        raise AssertionError("replay called the model")


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    model, prompt = A.MODEL, A.PROMPT
    yield
    A.MODEL, A.PROMPT = model, prompt


async def replay_only(tether: Tether, run_id: str, agent: Any) -> Any:
    """Re-execute purely from the journal: anything live would raise (see Tether.replay)."""
    return await tether.replay(run_id, agent)


def _script() -> ScriptedModel:
    return ScriptedModel(
        [
            tool_call("add", {"a": "two", "b": 3}),  # invalid: fed back to the model
            tool_call("add", {"a": 2, "b": 3}),
            ModelResponse(text="2 + 3 = 5", usage=Usage(input_tokens=40, output_tokens=6)),
            "yes, still 5",
        ]
    )


async def test_live_run_journals_each_attempt_and_resume_does_not_call_again(tether: Tether):
    A.MODEL = model = _script()
    first = await tether.run(A.tool_loop, {})
    assert first.status == "waiting", first.error
    assert len(model.calls) == 3  # invalid call + corrected call + answer
    # The feedback round saw the validation error as a tool result.
    assert "'two' is not of type 'integer'" in (model.calls[1].messages[-1].content or "")

    steps = [e for e in tether.events(first.id) if e.kind == "step_completed"]
    assert [e.name for e in steps] == ["model:scripted"] * 3
    rec = steps[2].data
    assert rec["usage"] == {"input_tokens": 40, "output_tokens": 6}
    assert rec["response"]["text"] == "2 + 3 = 5" and len(rec["request_hash"]) == 64

    tether.signal(first.id, "go", "ok")
    done = await tether.drive(first.id)
    assert done.status == "succeeded", done.error
    assert len(model.calls) == 4, "resuming re-ran a journaled model call"
    result = dict(done.result)
    # Usage flows back from the journaled response: 46 tokens for the answer plus the tool call's.
    assert result.pop("tokens") > 46
    assert result == {
        "call": {"id": "call_2_0", "name": "add", "arguments": {"a": 2, "b": 3},
                 "raw_arguments": None},
        "answer": "2 + 3 = 5",
        "after_signal": "yes, still 5",
    }  # fmt: skip

    # Pure replay from the journal: same result, and the model is never called.
    A.MODEL = Forbidden()
    n_events = tether.store.count_events(first.id)
    assert await replay_only(tether, first.id, A.tool_loop) == done.result
    assert tether.store.count_events(first.id) == n_events


async def test_replay_with_a_changed_request_is_non_determinism(tether: Tether):
    A.MODEL = _script()
    first = await tether.run(A.tool_loop, {})
    tether.signal(first.id, "go", "ok")
    assert (await tether.drive(first.id)).status == "succeeded"

    A.MODEL = Forbidden()
    A.PROMPT = "What is 2 + 4?"  # the code now sends a different prompt
    with pytest.raises(NonDeterminismError) as info:
        await replay_only(tether, first.id, A.tool_loop)
    msg = str(info.value)
    assert "model:scripted" in msg and "a different request" in msg


async def test_request_hash_covers_messages_tools_schema_and_params():
    base = request_hash("m", [Message.user("a")], [], None, {})
    assert base == request_hash("m", [Message.user("a")], [], None, {})
    assert base != request_hash("m", [Message.user("b")], [], None, {})
    assert base != request_hash("m2", [Message.user("a")], [], None, {})
    assert base != request_hash("m", [Message.user("a")], [], {"type": "object"}, {})
    assert base != request_hash("m", [Message.user("a")], [], None, {"temperature": 0.5})


async def _always_invalid(ctx: Context, input: Any) -> Any:
    try:
        await ctx.model(
            A.MODEL, [Message.user("q")], output_schema={"type": "object"}, max_feedback=1
        )
    except ModelOutputError as exc:
        return {"error": str(exc), "last": exc.last_output, "attempts": exc.attempts}
    return None


async def test_output_error_after_feedback_is_raised_to_the_agent(tether: Tether):
    A.MODEL = model = ScriptedModel(["nope", "still nope"])
    done = await tether.run(_always_invalid, {})
    assert done.status == "succeeded", done.error
    assert done.result["attempts"] == 2 and done.result["last"] == "still nope"
    assert "still invalid after 2 attempt(s)" in done.result["error"]
    assert len(model.calls) == 2


async def _catches_provider_error(ctx: Context, input: Any) -> Any:
    try:
        await ctx.model(A.MODEL, [Message.user("q")])
    except ActivityError as exc:
        return {"type": exc.error_type, "message": exc.message}
    return None


async def test_provider_error_is_journaled_and_replayed_without_calling(tether: Tether):
    A.MODEL = RetryModel(
        ScriptedModel([ModelServerError("HTTP 503 from x (server error)", status_code=503)] * 2),
        max_attempts=2,
        initial_delay=0.0,
    )
    done = await tether.run(_catches_provider_error, {})
    assert done.status == "succeeded", done.error
    assert done.result == {"type": "ModelServerError", "message": "HTTP 503 from x (server error)"}
    failed = [e for e in tether.events(done.id) if e.kind == "step_failed"]
    assert len(failed) == 1  # both retries happened inside one journaled step

    A.MODEL = Forbidden()
    assert await replay_only(tether, done.id, _catches_provider_error) == done.result
