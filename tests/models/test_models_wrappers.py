from __future__ import annotations

import random

import pytest

from tether.models import (
    AllModelsFailedError,
    BudgetExceededError,
    CostModel,
    FallbackModel,
    Message,
    ModelClientError,
    ModelConnectionError,
    ModelOutputError,
    ModelRateLimitError,
    ModelResponse,
    ModelServerError,
    ModelTimeoutError,
    PricingTable,
    RetryModel,
    ScriptedModel,
    Usage,
)
from tether.models.pricing import DEFAULT_PRICING

Q = [Message.user("q")]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_retry_recovers_from_transient_errors_with_exponential_backoff():
    sleep = Sleeps()
    inner = ScriptedModel(
        [
            ModelServerError("503", status_code=503),
            ModelRateLimitError("429", status_code=429),
            ModelTimeoutError("slow"),
            "ok",
        ]
    )
    model = RetryModel(inner, max_attempts=4, initial_delay=1.0, jitter=False, sleep=sleep)
    r = await model.complete(Q)
    assert r.text == "ok"
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert len(inner.calls) == 4


async def test_retry_jitter_stays_within_half_to_full_delay_and_respects_cap():
    sleep = Sleeps()
    inner = ScriptedModel([ModelConnectionError("down")] * 5 + ["ok"])
    model = RetryModel(
        inner, max_attempts=6, initial_delay=1.0, max_delay=5.0, sleep=sleep, rng=random.Random(7)
    )
    assert (await model.complete(Q)).text == "ok"
    caps = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(sleep.delays) == 5
    for d, cap in zip(sleep.delays, caps, strict=True):
        assert cap / 2 <= d <= cap
    assert len(set(sleep.delays)) == 5  # jittered, not lock-step


async def test_retry_does_not_retry_client_errors():
    sleep = Sleeps()
    inner = ScriptedModel([ModelClientError("401 bad key", status_code=401), "never"])
    with pytest.raises(ModelClientError):
        await RetryModel(inner, sleep=sleep).complete(Q)
    assert sleep.delays == [] and len(inner.calls) == 1


async def test_retry_gives_up_after_max_attempts_with_the_last_error():
    sleep = Sleeps()
    inner = ScriptedModel([ModelServerError(f"500 #{i}", status_code=500) for i in range(3)])
    with pytest.raises(ModelServerError, match="#2"):
        await RetryModel(inner, max_attempts=3, jitter=False, sleep=sleep).complete(Q)
    assert len(sleep.delays) == 2


async def test_fallback_uses_second_model_when_first_fails():
    primary = ScriptedModel([ModelConnectionError("down")], name="primary")
    backup = ScriptedModel(["from backup"], name="backup")
    r = await FallbackModel(primary, backup).complete(Q)
    assert (r.text, r.model) == ("from backup", "backup")
    assert len(primary.calls) == 1 and len(backup.calls) == 1


async def test_fallback_all_failed_lists_every_error():
    a = ScriptedModel([ModelServerError("a broke", status_code=500)], name="a")
    b = ScriptedModel([ModelClientError("b rejected", status_code=400)], name="b")
    with pytest.raises(AllModelsFailedError) as info:
        await FallbackModel(a, b).complete(Q)
    assert [n for n, _ in info.value.errors] == ["a", "b"]
    assert "a broke" in str(info.value) and "b rejected" in str(info.value)


async def test_fallback_does_not_swallow_output_errors_or_bugs():
    err = ModelOutputError("bad", last_output="x", errors=["e"], attempts=1)
    a = ScriptedModel([err], name="a")
    b = ScriptedModel(["unused"], name="b")
    with pytest.raises(ModelOutputError):
        await FallbackModel(a, b).complete(Q)
    c = ScriptedModel([RuntimeError("bug")], name="c")
    with pytest.raises(RuntimeError):
        await FallbackModel(c, b).complete(Q)
    assert b.calls == []


async def test_retry_around_fallback_composes():
    sleep = Sleeps()
    a = ScriptedModel([ModelServerError("x", status_code=500), "a ok"], name="a")
    b = ScriptedModel([ModelServerError("y", status_code=502)], name="b")
    model = RetryModel(FallbackModel(a, b), sleep=sleep, jitter=False)
    # the chain failed for transient reasons: it is tried again, the primary first...
    assert (await model.complete(Q)).text == "a ok"
    assert (len(a.calls), len(b.calls)) == (2, 1)
    # ...and a retry_on of one's own may still pick which chain failures to retry.
    a2 = ScriptedModel([ModelServerError("x", status_code=500), "a ok"], name="a")
    b2 = ScriptedModel([ModelServerError("y", status_code=502)], name="b")
    model2 = RetryModel(
        FallbackModel(a2, b2), sleep=sleep, retry_on=lambda e: isinstance(e, AllModelsFailedError)
    )
    assert (await model2.complete(Q)).text == "a ok"


def _resp(model: str, i: int, o: int) -> ModelResponse:
    return ModelResponse(text="x", model=model, usage=Usage(input_tokens=i, output_tokens=o))


async def test_cost_from_default_pricing_with_snapshot_prefix_match():
    inner = ScriptedModel([_resp("gpt-4o-mini-2024-07-18", 1_000_000, 500_000)])
    r = await CostModel(inner).complete(Q)
    assert r.cost_usd == pytest.approx(0.15 + 0.30)


async def test_cost_with_user_extended_table_and_totals():
    table = PricingTable.defaults()
    table.register("my-finetune", input_per_mtok=10.0, output_per_mtok=20.0)
    inner = ScriptedModel(
        [
            _resp("my-finetune", 1000, 1000),
            _resp("mystery-model", 50, 50),
            _resp("my-finetune", 0, 500),
        ]
    )
    model = CostModel(inner, pricing=table)
    costs = [(await model.complete(Q)).cost_usd for _ in range(3)]
    assert costs == [pytest.approx(0.03), None, pytest.approx(0.01)]
    t = model.tracker
    assert t.calls == 3 and t.unpriced_calls == 1
    assert t.cost_usd == pytest.approx(0.04)
    assert t.usage == Usage(input_tokens=1050, output_tokens=1550)
    assert t.by_model["my-finetune"] == Usage(input_tokens=1000, output_tokens=1500)
    assert "my-finetune" not in DEFAULT_PRICING  # extending a copy leaves the defaults alone


async def test_provider_reported_cost_is_kept():
    inner = ScriptedModel([_resp("gpt-4o", 10, 10).model_copy(update={"cost_usd": 1.23})])
    assert (await CostModel(inner).complete(Q)).cost_usd == 1.23


async def test_local_models_are_free():
    r = await CostModel(ScriptedModel([_resp("local:qwen", 9999, 9999)])).complete(Q)
    assert r.cost_usd == 0.0


async def test_budget_stops_further_calls():
    table = PricingTable({"m": (1_000_000.0, 0.0)})  # $1 per input token
    inner = ScriptedModel([_resp("m", 2, 0), _resp("m", 2, 0)])
    model = CostModel(inner, pricing=table, budget_usd=1.5)
    await model.complete(Q)
    with pytest.raises(BudgetExceededError, match=r"budget of \$1.5000 reached"):
        await model.complete(Q)
    assert len(inner.calls) == 1


def test_pricing_register_validates():
    with pytest.raises(ValueError):
        PricingTable().register("x", input_per_mtok=1.0)
