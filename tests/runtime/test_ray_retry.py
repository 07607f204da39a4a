"""Step retries and resources without a Ray cluster: the policy, the journal of each attempt,
and a run resumed between a failed attempt and the next one (tests/runtime/test_ray.py runs
the same policy on Ray)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tether import Tether
from tether.runtime import Context, InvalidInput, Resources, StepRetry, grow_memory
from tether.store import NewEvent, dumps

CALLS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def flaky(fails: int) -> str:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if CALLS["flaky"] <= fails:
        raise ConnectionError(f"attempt {CALLS['flaky']} refused")
    return f"ok after {CALLS['flaky']}"


def out_of_memory() -> None:
    CALLS["oom"] = CALLS.get("oom", 0) + 1
    raise MemoryError("cannot allocate")


def fits() -> str:
    return "fits"


async def retries_connection_errors(ctx: Context, fails: int) -> Any:
    return await ctx.step("flaky", flaky, fails,
                          retry=StepRetry(max_attempts=3, on=frozenset({"ConnectionError"})))


async def default_policy(ctx: Context, fails: int) -> Any:
    return await ctx.step("flaky", flaky, fails)


async def grows(ctx: Context, _: Any) -> Any:
    return await ctx.step("oom", out_of_memory, resources=Resources(memory=100),
                          retry=StepRetry(max_attempts=3, on_oom=grow_memory(1.5, limit=200)))


async def grows_then_fits(ctx: Context, _: Any) -> Any:
    return await ctx.step("fit", fits, resources=Resources(memory=64 << 20),
                          retry=StepRetry(on_oom=grow_memory(2.0)))


async def grows_nothing(ctx: Context, _: Any) -> Any:
    return await ctx.step("oom", out_of_memory, retry=StepRetry(on_oom=grow_memory()))


def starts(tether: Tether, run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in tether.events(run_id) if e.kind == "step_started"]


async def test_a_retried_step_runs_again_under_the_same_key(tether: Tether) -> None:
    run = await tether.run(retries_connection_errors, 2)
    assert (run.status, run.result) == ("succeeded", "ok after 3")
    events = [e for e in tether.events(run.id) if e.name == "flaky"]
    assert [e.kind for e in events] == ["step_started", "step_failed"] * 2 + [
        "step_started", "step_completed"]
    assert {e.key for e in events} == {"1"}
    assert [d["attempt"] for d in starts(tether, run.id)] == [1, 2, 3]


async def test_a_policy_gives_up_after_its_attempts(tether: Tether) -> None:
    run = await tether.run(retries_connection_errors, 5)
    assert run.status == "failed" and "attempt 3 refused" in (run.error or "")
    assert CALLS["flaky"] == 3


async def test_without_a_policy_a_failed_step_is_not_retried(tether: Tether) -> None:
    run = await tether.run(default_policy, 1)
    assert run.status == "failed" and CALLS["flaky"] == 1


async def test_out_of_memory_grows_the_request_up_to_its_limit(tether: Tether) -> None:
    run = await tether.run(grows, None)
    assert run.status == "failed" and "MemoryError: cannot allocate" in (run.error or "")
    assert [d["resources"] for d in starts(tether, run.id)] == [
        {"memory": 100}, {"memory": 150}, {"memory": 200}]


async def test_on_oom_without_a_memory_request_is_refused_before_running(
        tether: Tether) -> None:
    run = await tether.run(grows_nothing, None)
    assert run.status == "failed"
    assert "step 'oom': retry=StepRetry(on_oom=...)" in (run.error or "")
    assert "resources=Resources(memory=...)" in (run.error or "")
    assert "oom" not in CALLS


async def test_a_run_resumed_after_a_failed_attempt_goes_on_with_the_next(
        tether: Tether) -> None:
    """The worker died after journaling an out-of-memory attempt: the next worker does not
    fail the step (the policy allows more) but runs attempt 2 with twice the memory."""
    run_id = tether.submit(grows_then_fits, None)
    tether.store.write(lambda tx: tx.claim("dead-worker", 1, -1.0))  # lease already expired

    def crash(tx: Any) -> None:
        now = time.time()
        tx.append_events(run_id, [
            NewEvent(2, "run_started", None, None, dumps({"worker": "dead-worker"}), now),
            NewEvent(3, "step_started", "1", "fit",
                     dumps({"attempt": 1, "resources": {"memory": 64 << 20}}), now),
            NewEvent(4, "step_failed", "1", "fit",
                     dumps({"type": "StepOutOfMemory", "message": "killed by Ray"}), now),
        ])

    tether.store.write(crash)
    run = await tether.drive(run_id)
    assert (run.status, run.result) == ("succeeded", "fits")
    assert starts(tether, run_id)[-1] == {"attempt": 2, "resources": {"memory": 128 << 20}}


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Resources(num_cpus=-1), "Resources(num_cpus=-1): give a number >= 0"),
    (lambda: Resources(memory=1.5), "Resources(memory=1.5): give whole bytes > 0"),  # type: ignore[arg-type]
    (lambda: Resources(custom={"tpu": -2}), "map resource names to numbers >= 0"),
    (lambda: grow_memory(1.0), "grow_memory(1.0): the factor must be a number > 1"),
    (lambda: StepRetry(max_attempts=0), "StepRetry(max_attempts=0): give the number"),
    (lambda: StepRetry(on="ConnectionError"), "give a set of error type names"),  # type: ignore[arg-type]
])
def test_bad_declarations_say_what_to_give(make: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make()
    assert message in str(caught.value)
