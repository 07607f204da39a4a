"""`RetryModel` around `FallbackModel` retries the whole chain, and both wrappers list their tries.

A retry wrapper around a fallback is what a user writes to say "try these models in order, and if
they all fail for a passing reason, try them all again": it must retry on a chain whose errors
include a transient one (and only then), honour `max_attempts`, `Retry-After` and `max_delay`.
Every try behind an answer is listed on the response (`ModelResponse.attempts`): model, error
class, redacted message, duration.
"""

from __future__ import annotations

import pytest

from tether.models import (
    AllModelsFailedError,
    FallbackModel,
    ModelAttempt,
    ModelClientError,
    ModelConnectionError,
    ModelOutputError,
    ModelRateLimitError,
    ModelResponse,
    ModelServerError,
    RetryModel,
    ScriptedModel,
)

from .test_models_wrappers import Q, Sleeps


def _e500(msg: str = "down") -> ModelServerError:
    return ModelServerError(msg, status_code=500)


async def test_retry_around_fallback_retries_the_whole_chain() -> None:
    sleep = Sleeps()
    a = ScriptedModel([_e500("a broke"), "a ok"], name="a")
    b = ScriptedModel([ModelServerError("b broke", status_code=502)], name="b")
    model = RetryModel(FallbackModel(a, b), sleep=sleep, jitter=False, initial_delay=0.5)
    r = await model.complete(Q)
    assert r.text == "a ok"
    assert (len(a.calls), len(b.calls)) == (2, 1)
    assert sleep.delays == [0.5]


async def test_retry_around_fallback_stops_at_max_attempts() -> None:
    sleep = Sleeps()
    a = ScriptedModel([_e500(f"a#{i}") for i in range(5)], name="a")
    b = ScriptedModel([_e500(f"b#{i}") for i in range(5)], name="b")
    model = RetryModel(FallbackModel(a, b), max_attempts=3, sleep=sleep, jitter=False)
    with pytest.raises(AllModelsFailedError, match=r"a#2.*b#2"):
        await model.complete(Q)
    assert (len(a.calls), len(b.calls)) == (3, 3)
    assert sleep.delays == [0.5, 1.0]


async def test_a_chain_of_permanent_errors_is_not_retried() -> None:
    sleep = Sleeps()
    a = ScriptedModel([ModelClientError("401 key", status_code=401), "never"], name="a")
    b = ScriptedModel([ModelClientError("404 model", status_code=404), "never"], name="b")
    with pytest.raises(AllModelsFailedError) as info:
        await RetryModel(FallbackModel(a, b), sleep=sleep).complete(Q)
    assert not info.value.transient
    assert sleep.delays == [] and (len(a.calls), len(b.calls)) == (1, 1)


async def test_one_transient_error_in_the_chain_is_enough_to_retry() -> None:
    sleep = Sleeps()
    a = ScriptedModel([ModelClientError("401 key", status_code=401)] * 2, name="a")
    b = ScriptedModel([ModelConnectionError("refused"), "b ok"], name="b")
    model = RetryModel(FallbackModel(a, b), sleep=sleep, jitter=False)
    assert (await model.complete(Q)).text == "b ok"
    assert (len(a.calls), len(b.calls)) == (2, 2)


@pytest.mark.parametrize(("after_a", "after_b", "expected"), [
    (7.0, 3.0, 7.0),      # the longest wait any model asked for
    (None, 2.0, 2.0),
    (1e9, None, 20.0),    # never past max_delay
    (None, None, 0.5),    # none asked: the backoff
])
async def test_retry_around_fallback_honours_retry_after(
    after_a: float | None, after_b: float | None, expected: float
) -> None:
    sleep = Sleeps()
    a = ScriptedModel([ModelRateLimitError("429", status_code=429, retry_after=after_a), "ok"],
                      name="a")
    b = ScriptedModel([ModelServerError("503", status_code=503, retry_after=after_b)], name="b")
    model = RetryModel(FallbackModel(a, b), sleep=sleep, jitter=False, max_delay=20.0)
    assert (await model.complete(Q)).text == "ok"
    assert sleep.delays == [expected]


async def test_a_custom_retry_on_is_asked_of_the_chains_errors() -> None:
    sleep = Sleeps()
    a = ScriptedModel([ModelClientError("409", status_code=400), "a ok"], name="a")
    b = ScriptedModel([ModelClientError("409", status_code=400)], name="b")

    def only_client_errors(exc: BaseException) -> bool:
        return isinstance(exc, ModelClientError)

    model = RetryModel(FallbackModel(a, b), sleep=sleep, retry_on=only_client_errors)
    assert (await model.complete(Q)).text == "a ok"


# --------------------------------------------------------------------------- attempts


def _shape(attempts: list[ModelAttempt]) -> list[tuple[str, str | None]]:
    return [(t.model, t.error_type) for t in attempts]


async def test_fallback_lists_the_failed_primary_and_the_answer() -> None:
    a = ScriptedModel([ModelConnectionError("could not reach http://a: refused")], name="a")
    b = ScriptedModel(["from b"], name="b")
    r = await FallbackModel(a, b).complete(Q)
    assert r.text == "from b"
    assert _shape(r.attempts) == [("a", "ModelConnectionError"), ("b", None)]
    assert r.attempts[0].error == "could not reach http://a: refused"
    assert r.attempts[1].error is None
    assert all(t.duration_s >= 0 for t in r.attempts)
    # and they survive the JSON round trip the journal makes
    again = ModelResponse.model_validate(r.model_dump(mode="json"))
    assert again.attempts == r.attempts


async def test_an_answer_at_the_first_try_lists_nothing_and_serializes_as_before() -> None:
    a = ScriptedModel(["from a"], name="a")
    r = await RetryModel(FallbackModel(a, ScriptedModel([], name="b"))).complete(Q)
    assert r.attempts == []
    assert "attempts" not in r.model_dump(mode="json")


async def test_nested_wrappers_give_one_flat_list_in_call_order() -> None:
    sleep = Sleeps()
    a = ScriptedModel([_e500("a1"), _e500("a2")], name="a")
    b = ScriptedModel(["b ok"], name="b")
    r = await FallbackModel(RetryModel(a, max_attempts=2, sleep=sleep), b).complete(Q)
    assert _shape(r.attempts) == [
        ("a", "ModelServerError"), ("a", "ModelServerError"), ("b", None)]
    assert [t.error for t in r.attempts[:2]] == ["a1", "a2"]

    a = ScriptedModel([_e500("a1"), "a ok"], name="a")
    b = ScriptedModel([_e500("b1")], name="b")
    r = await RetryModel(FallbackModel(a, b), sleep=sleep).complete(Q)
    assert _shape(r.attempts) == [
        ("a", "ModelServerError"), ("b", "ModelServerError"), ("a", None)]


async def test_a_failed_chain_carries_every_try() -> None:
    a = ScriptedModel([_e500("a1"), _e500("a2")], name="a")
    b = ScriptedModel([_e500("b1"), _e500("b2")], name="b")
    with pytest.raises(AllModelsFailedError) as info:
        await RetryModel(FallbackModel(a, b), max_attempts=2, sleep=Sleeps()).complete(Q)
    assert [t.error for t in info.value.model_attempts] == ["a1", "b1", "a2", "b2"]


async def test_attempt_errors_are_redacted_and_bounded() -> None:
    key = "sk-live-ABCDEFGH0123456789"
    a = ScriptedModel([ModelConnectionError(f"proxy said: Bearer {key} " + "x" * 2000)],
                      name="a")
    r = await FallbackModel(a, ScriptedModel(["ok"], name="b")).complete(Q)
    error = r.attempts[0].error or ""
    assert key not in error and "[REDACTED]" in error
    assert len(error) <= 500


async def test_an_output_error_is_not_a_try_to_fall_back_from_but_carries_the_tries() -> None:
    bad = ModelOutputError("bad", last_output="x", errors=["e"], attempts=1)
    a = ScriptedModel([ModelConnectionError("refused")], name="a")
    b = ScriptedModel([bad], name="b")
    with pytest.raises(ModelOutputError) as info:
        await FallbackModel(a, b, ScriptedModel(["c"], name="c")).complete(Q)
    assert info.value.attempts == 1  # the feedback-round count is left alone
    assert _shape(info.value.model_attempts) == [
        ("a", "ModelConnectionError"), ("b", "ModelOutputError")]


def test_replay_catches_up_the_model_that_answered_not_the_one_the_provider_named() -> None:
    a = ScriptedModel(["a's item"], name="a")
    b = ScriptedModel(["b's item"], name="b")
    answered = ModelResponse(text="x", model="provider-id-2024", attempts=[
        ModelAttempt(model="a", error_type="ModelServerError", error="down"),
        ModelAttempt(model="b")])
    FallbackModel(a, b).replayed(Q, answered)
    assert (len(a.replays), len(b.replays)) == (0, 1)
