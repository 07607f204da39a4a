"""Tool calls through ctx: journaled on a real SQLite store, never re-executed on replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.runtime import BaseInterceptor, Effect
from tether.runtime.effects.tool import tool_effect
from tether.tools import ToolRegistry, ToolResult, tool
from tether.tools.effect import step_timeout

from . import agents_tools as A


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


async def replay_only(tether: Tether, run_id: str, agent: Any) -> Any:
    """Re-execute purely from the journal: anything live would raise (see Tether.replay)."""
    return await tether.replay(run_id, agent)


async def test_tool_calls_are_journaled_and_replay_does_not_reexecute(tether: Tether) -> None:
    first = await tether.run(A.uses_tools, {"a": 1})
    assert first.status == "waiting", first.error
    live = dict(A.CALLS)
    assert live == {"add": 1, "send_email": 1, "fragile": 1, "sluggish": 1}

    tether.signal(first.id, "go", "now")
    done = await tether.drive(first.id)
    assert done.status == "succeeded", done.error
    assert A.CALLS["send_email"] == 1, "resuming re-sent the email"
    assert A.CALLS["add"] == 2  # only the call after the signal ran live
    out = done.result

    assert out["sum"] == {"tool": "add", "ok": True, "output": 3, "error": None}
    assert out["after"]["output"] == 42
    # the write tool got the runtime's key: run_id:seq of its step_started event
    events = tether.events(first.id)
    mail_started = next(e for e in events
                        if e.kind == "step_started" and e.name == "tool:send_email")
    assert out["mail"]["output"] == {"sent_to": "x@y.z", "key": f"{first.id}:{mail_started.seq}"}
    seen_keys = A.KEYS
    assert seen_keys == [f"{first.id}:{mail_started.seq}"]

    invalid = ToolResult.model_validate(out["invalid"])
    assert not invalid.ok and invalid.error is not None
    assert invalid.error.type == "invalid_arguments"
    assert "- a: Input should be a valid integer" in invalid.error.message
    assert "- b: Field required" in invalid.error.message
    unknown = ToolResult.model_validate(out["unknown"])
    assert unknown.error is not None and unknown.error.type == "unknown_tool"
    assert "available tools: add, fragile, send_email, sluggish" in unknown.error.message
    failed = ToolResult.model_validate(out["failed"])
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("execution_error", "fragile broke on 7")
    slow = ToolResult.model_validate(out["slow"])
    assert slow.error is not None and slow.error.type == "timeout"
    assert slow.observation() == ("ERROR (timeout): tool 'sluggish' timed out after 0.05s; "
                                  "whether it took effect (or still will) is unknown")

    # every call, even rejected ones, is one journaled step with tool metadata for interceptors
    started = [e for e in events if e.kind == "step_started"]
    assert [e.name for e in started] == [
        "tool:add", "tool:send_email", "tool:add", "tool:substract", "tool:fragile",
        "tool:sluggish", "tool:add",
    ]
    by_name = {e.name: e.data for e in started}
    assert by_name["tool:send_email"]["meta"] == {
        "kind": "tool", "tool": "send_email", "version": "1", "side_effect": "write",
        "idempotent": False, "requires_approval": False, "critical": False,
    }
    # takes the key → safe to re-run if in doubt; a plain write tool is not
    assert by_name["tool:send_email"]["idempotent"] is True
    assert "idempotent" not in by_name["tool:fragile"]
    assert by_name["tool:substract"]["meta"]["rejected"] == "unknown_tool"
    assert started[2].data["meta"]["rejected"] == "invalid_arguments"

    # a pure replay from the journal returns the same results and executes nothing
    n_events = tether.store.count_events(first.id)
    calls_before = dict(A.CALLS)
    again = await replay_only(tether, first.id, A.uses_tools)
    assert again == out
    assert dict(A.CALLS) == calls_before
    assert tether.store.count_events(first.id) == n_events


async def test_parallel_tool_calls_through_gather(tether: Tether) -> None:
    rec = await tether.run(A.parallel_tools, 5)
    assert rec.status == "succeeded", rec.error
    assert rec.result == [0, 2, 4, 6, 8]
    assert A.CALLS["add"] == 5
    again = await replay_only(tether, rec.id, A.parallel_tools)
    assert again == rec.result and A.CALLS["add"] == 5


async def test_tool_effect_with_a_single_tool(tether: Tether) -> None:
    rec = await tether.run(A.single_tool, "hi")
    assert rec.status == "succeeded", rec.error
    assert rec.result == {"tool": "echo", "ok": True, "output": "hi", "error": None}
    (started,) = [e for e in tether.events(rec.id) if e.kind == "step_started"]
    assert started.name == "tool:echo" and started.data["idempotent"] is True


def test_step_timeout_covers_every_attempt() -> None:
    assert step_timeout(A.echo) == pytest.approx(31.0)
    assert step_timeout(A.registry.get("fragile")) == pytest.approx(31.0)
    assert step_timeout(tool(timeout=2, retries=2)(A.echo.fn)) == pytest.approx(7.3)
    assert step_timeout(tool(timeout=None)(A.echo.fn)) is None


async def test_bad_usage_is_rejected_before_any_step() -> None:
    with pytest.raises(ValueError, match="got tool 'echo' but name 'other'"):
        await tool_effect(None, A.echo, "other", {})
    with pytest.raises(ValueError, match="needs a tool name"):
        await tool_effect(None, ToolRegistry([A.echo]), None, {})
    with pytest.raises(TypeError, match="expects a ToolRegistry or a Tool, got dict"):
        await tool_effect(None, {"echo": A.echo}, "echo", {})  # type: ignore[arg-type]


class RecordingInterceptor(BaseInterceptor):
    """What guards see: every tool effect with its arguments and metadata."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...], dict[str, Any], bool]] = []

    async def after(self, ctx: Any, effect: Effect, result: Any, error: BaseException | None,
                    replay: bool) -> None:
        if effect.name.startswith("tool:"):
            self.seen.append((effect.name, effect.args, dict(effect.meta), replay))


async def test_interceptors_see_the_proposed_arguments_and_tool_metadata(tmp_path: Path) -> None:
    recorder = RecordingInterceptor()
    t = Tether(str(tmp_path / "t.db"), interceptors=[recorder])
    try:
        rec = await t.run(A.approval_tools, None)
    finally:
        t.close()
    assert rec.status == "succeeded", rec.error
    assert rec.result == [2, "x"]
    (add_name, add_args, add_meta, replay), (wire_name, wire_args, wire_meta, _) = recorder.seen
    assert (add_name, replay, add_meta["side_effect"]) == ("tool:add", False, "read")
    # as the model proposed them (string "1" not yet coerced), so policy digests match
    assert add_args == ({"a": "1", "b": 1},)
    assert wire_name == "tool:wire"
    assert wire_args == ({"to": "x"},)
    assert (wire_meta["requires_approval"], wire_meta["critical"]) == (True, True)
    assert wire_meta["side_effect"] == "destructive"
