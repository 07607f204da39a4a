"""Seams used by guards and other cross-cutting layers: interceptors, short-circuits, flags,
annotations and usage counters — each exactly once across replays."""

from __future__ import annotations

from typing import Any

import pytest

from tether import BaseInterceptor, Context, Effect, Tether
from tether.runtime import ShortCircuit

from . import agents_core as A


@pytest.fixture(autouse=True)
def _reset() -> None:
    A.reset()


class Recorder(BaseInterceptor):
    def __init__(self) -> None:
        self.before_calls: list[str] = []
        self.after_calls: list[tuple[str, str, bool]] = []

    async def before(self, ctx: Context, effect: Effect) -> None:
        self.before_calls.append(f"{effect.kind}:{effect.name}")
        if effect.name == "left":
            raise ShortCircuit({"denied": True}, {"rule": "no-left"})

    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        self.after_calls.append((effect.kind, effect.name, replay))


async def test_interceptors_see_live_and_replayed_effects(db_path: str) -> None:
    rec = Recorder()
    t = Tether(db_path, interceptors=[rec])
    first = await t.run(A.every_op, {"x": 1})
    assert first.status == "waiting"
    assert "step:left" in rec.before_calls and A.CALLS["left"] == 0  # short-circuited
    # the first run already resumed once (after the child finished), so both kinds appear
    assert ("step", "async-step", False) in rec.after_calls
    assert ("step", "async-step", True) in rec.after_calls
    rec.before_calls.clear()
    rec.after_calls.clear()
    t.signal(first.id, "go", None)
    done = await t.drive(first.id)
    assert done.status == "succeeded" and done.result["p"] == {"denied": True}
    replayed = [(k, n) for k, n, replay in rec.after_calls if replay]
    assert ("spawn", "tests.runtime.agents_core:child_double") in replayed
    assert ("step", "left") in replayed and ("step", "async-step") in replayed
    assert rec.before_calls == []  # nothing ran live on the resume (it only replayed)
    started = next(e for e in t.events(first.id) if e.kind == "step_started" and e.name == "left")
    assert started.data["short_circuit"] == {"rule": "no-left"}


class UsageCounter(BaseInterceptor):
    async def after(self, ctx: Context, effect: Effect, result: Any,
                    error: BaseException | None, replay: bool) -> None:
        if not replay:
            ctx.add_usage({"steps": 1, "tokens_in": 5})


async def test_flags_annotations_and_usage_are_written_once(db_path: str) -> None:
    tether = Tether(db_path, interceptors=[UsageCounter()])
    first = await tether.run(A.flags_and_notes, None)
    tether.signal(first.id, "go", 7)
    done = await tether.drive(first.id)
    assert done.status == "succeeded" and done.result == 7
    kinds = [e.kind for e in tether.events(first.id)]
    assert kinds.count("run_flagged") == 1 and kinds.count("annotation") == 1
    assert done.flags == [{"reason": "called a honeypot", "tool": "delete_all"}]
    import datetime as dt

    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert tether.store.get_usage("default", day) == {"steps": 1.0, "tokens_in": 5.0}
