"""Budget ledgers, retry/backoff and circuit breakers (pure objects)."""

from __future__ import annotations

import pytest

from tether.guards.budget import BudgetLimits, Ledger
from tether.guards.errors import BudgetExceeded, ToolUnavailable
from tether.guards.retry import BreakerBoard, CircuitBreaker, RetryPolicy, call_with_retry


def run_until_halt(ledger: Ledger, kind: str, usage: tuple[int, int, float] = (0, 0, 0.0),
                   max_iter: int = 10_000) -> BudgetExceeded:
    for _ in range(max_iter):
        try:
            ledger.check(kind)
        except BudgetExceeded as exc:
            return exc
        ledger.charge_effect(kind)
        ledger.charge_usage(*usage)
    raise AssertionError("never halted")


@pytest.mark.parametrize("limits,kind,usage,budget,limit,spent", [
    (BudgetLimits(steps=5), "model", (0, 0, 0.0), "steps", 5, 5),
    (BudgetLimits(tool_calls=3), "tool", (0, 0, 0.0), "tool_calls", 3, 3),
    (BudgetLimits(child_runs=2), "child", (0, 0, 0.0), "child_runs", 2, 2),
    (BudgetLimits(tokens_in=1000), "model", (300, 10, 0.0), "tokens_in", 1000, 1200),
    (BudgetLimits(tokens_out=100), "model", (1, 40, 0.0), "tokens_out", 100, 120),
    (BudgetLimits(cost_usd=0.05), "model", (0, 0, 0.02), "cost_usd", 0.05, 0.06),
])
def test_runaway_halted_with_exact_spend(limits, kind, usage, budget, limit, spent):
    exc = run_until_halt(Ledger(limits), kind, usage)
    assert (exc.budget, exc.limit, exc.spent) == (budget, limit, pytest.approx(spent))
    assert budget in exc.reason and f"limit={limit}" in exc.reason


def test_wall_time():
    ledger = Ledger(BudgetLimits(wall_time_s=10), started_at=1000.0)
    ledger.check("model", now=1009.0)
    with pytest.raises(BudgetExceeded) as exc:
        ledger.check("model", now=1010.5)
    assert (exc.value.budget, exc.value.spent) == ("wall_time_s", 10.5)


def test_children_draw_from_parent_budget():
    parent = Ledger(BudgetLimits(steps=10, tokens_in=100))
    parent.charge_effect("model")
    a, b = parent.child(), parent.child(BudgetLimits(steps=3))
    for _ in range(3):
        a.check("model")
        a.charge_effect("model")
    a.charge_usage(100, 0, 0)
    exc = run_until_halt(b, "model")
    assert (exc.budget, exc.scope) == ("tokens_in", "run")  # parent's tokens already gone
    assert parent.spend.steps == 4 and parent.spend.tokens_in == 100
    assert parent.remaining()["steps"] == 6


def test_child_own_limit_is_reported_with_its_scope():
    parent = Ledger(BudgetLimits(steps=100))
    child = parent.child(BudgetLimits(steps=2))
    exc = run_until_halt(child, "model")
    assert (exc.scope, exc.limit, exc.spent) == ("child run", 2, 2)


def test_tenant_day_budget():
    acme = Ledger(BudgetLimits(cost_usd=1.0), scope="tenant acme (today)")
    other = Ledger(BudgetLimits(cost_usd=1.0), scope="tenant other (today)")
    for _ in range(4):
        run = Ledger(BudgetLimits(), scope="run", parent=acme)
        run.check("model")
        run.charge_effect("model")
        run.charge_usage(0, 0, 0.3)
    with pytest.raises(BudgetExceeded) as exc:
        Ledger(BudgetLimits(), scope="run", parent=acme).check("model")
    assert exc.value.scope.startswith("tenant acme") and exc.value.spent == pytest.approx(1.2)
    Ledger(BudgetLimits(), scope="run", parent=other).check("model")  # other tenants unaffected


def test_invalid_limits_rejected():
    with pytest.raises(ValueError):
        BudgetLimits(steps=-1)
    with pytest.raises(ValueError):
        BudgetLimits.from_json({"stepz": 3})
    assert BudgetLimits.from_json({"steps": 3}).to_json() == {"steps": 3}


def test_backoff_is_exponential_capped_and_deterministic():
    p = RetryPolicy(max_attempts=6, base_delay_s=1, factor=2, max_delay_s=5, jitter="none")
    assert [p.delay(a) for a in range(1, 6)] == [1, 2, 4, 5, 5]
    j = RetryPolicy(base_delay_s=1, factor=2, max_delay_s=100)
    delays = [j.delay(a, seed="run:3") for a in range(1, 8)]
    assert delays == [j.delay(a, seed="run:3") for a in range(1, 8)]  # replay-stable
    assert all(0 <= d <= 2 ** (a - 1) for a, d in enumerate(delays, 1))
    assert len({j.delay(1, seed=f"s{i}") for i in range(20)}) > 15  # jitter spreads


async def test_retry_continues_count_after_crash():
    attempts: list[int] = []
    slept: list[float] = []

    def flaky(attempt: int) -> str:
        attempts.append(attempt)
        if attempt < 3:
            raise ConnectionError("down")
        return "ok"

    # two attempts were journaled before the crash: the retry continues at attempt 3
    out = await call_with_retry(flaky, RetryPolicy(max_attempts=3), attempts_so_far=2,
                                sleep=slept.append)
    assert out == "ok" and attempts == [3] and slept == []
    attempts.clear()
    with pytest.raises(ConnectionError):
        await call_with_retry(flaky, RetryPolicy(max_attempts=2, jitter="none",
                                                 base_delay_s=0.5), sleep=slept.append)
    assert attempts == [1, 2] and slept == [0.5]


def test_circuit_breaker_opens_half_opens_and_closes():
    b = CircuitBreaker("search", failure_threshold=3, cooldown_s=10)
    for t in range(3):
        b.before_call(t)
        b.record_failure(t)
    assert b.state == "open"
    with pytest.raises(ToolUnavailable) as exc:
        b.before_call(5)
    assert "search" in str(exc.value) and "unavailable" in str(exc.value)
    b.before_call(12.5)  # cooldown over: one trial
    assert b.state == "half_open"
    with pytest.raises(ToolUnavailable):
        b.before_call(12.6)  # only one trial at a time
    b.record_failure(13)
    assert b.state == "open"
    b.before_call(23.5)
    b.record_success()
    assert b.state == "closed" and b.failures == 0


def test_breaker_board_per_tool():
    board = BreakerBoard(failure_threshold=1, overrides={"slow": (5, 1.0)})
    board.get("a").record_failure(0)
    assert board.states() == {"a": "open"}
    assert board.get("slow").failure_threshold == 5


async def _noop(ctx, _input):  # type: ignore[no-untyped-def]
    return None


def test_a_run_budget_has_the_scopes_its_limits_give_whatever_default_came_before(tether):
    """A root run without limits of its own and an unlimited default has no budget to keep
    (mode "off", no store reads); the answer "unlimited" is remembered for the default object
    last seen, so another default — limited, or unlimited again — is compared anew."""
    from tether.guards._state import run_budget

    plain = tether.store.get_run(tether.submit(_noop, 1))
    own = tether.store.get_run(tether.submit(_noop, 1, options={"budget": {"steps": 5}}))
    limited, unlimited = BudgetLimits(steps=3), BudgetLimits()
    for default in (unlimited, limited, unlimited, BudgetLimits(), limited, limited):
        budget = run_budget(tether.store, plain, default)
        if default == unlimited:
            assert (budget.mode, budget.scopes) == ("off", [])
        else:
            assert budget.mode == "local"
            assert [(s.run_id, s.limits) for s in budget.scopes] == [(plain.id, limited)]
        budget = run_budget(tether.store, own, default)
        assert budget.mode == "local"
        assert [s.limits for s in budget.scopes] == [BudgetLimits(steps=5)]
