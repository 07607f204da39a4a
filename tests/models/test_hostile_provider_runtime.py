"""A hostile provider behind `ctx.model` on the real runtime (SQLite store, guards' budgets).

What the earlier layers refuse must reach the run as a clear, journaled failure; what they accept
(a huge but well-formed token count) must be charged, so a lying provider halts the run by its
budget instead of overflowing a counter or crashing the guards.
"""

from __future__ import annotations

import json
from typing import Any

from tests.models.hostile_provider_support import HostileServer, Reply, chat_reply
from tether import Tether
from tether.guards import GuardConfig, Guards
from tether.models import FallbackModel, Message, OpenAIChatModel, RetryModel

URL: dict[str, str] = {}  # the hostile server's base URL, set by each test before the run
KEY = "sk-live-HOSTILE0123456789"


def _model() -> OpenAIChatModel:
    return OpenAIChatModel("gpt-4o-mini", base_url=URL["base"], api_key=KEY, timeout=5)


async def spender(ctx: Any, input: Any) -> int:
    """Calls the model until something stops it; returns how many calls got through."""
    model = _model()
    try:
        for i in range(input["calls"]):
            await ctx.model(model, [Message.user(f"q{i}")], validate=False)
        return input["calls"]
    finally:
        await model.aclose()


async def fallback_once(ctx: Any, input: Any) -> str | None:
    """One call through retry + fallback over two hostile endpoints."""
    first, second = _model(), OpenAIChatModel(
        "gpt-4o-mini", base_url=URL["second"], api_key=KEY, timeout=5
    )
    model = FallbackModel(RetryModel(first, max_attempts=2, initial_delay=0.01), second)
    try:
        return (await ctx.model(model, [Message.user("q")], validate=False)).text
    finally:
        await model.aclose()


def _tether(db_path: str) -> Tether:
    guards = Guards(GuardConfig())
    return Tether(db_path, interceptors=guards.interceptors(), lease_ttl=5.0)


async def test_lying_usage_is_charged_and_halts_the_run_by_its_budget(db_path: str) -> None:
    huge = {"prompt_tokens": 10**30, "completion_tokens": 10**30}
    async with HostileServer(Reply.json(chat_reply(usage=huge))) as srv:
        URL["base"] = srv.base_url
        t = _tether(db_path)
        try:
            run = await t.run(spender, {"calls": 50}, options={"budget": {"tokens_in": 10**6}})
            assert run.status == "halted", (run.status, run.error)
            assert "tokens_in" in (run.reason or "") and "exhausted" in (run.reason or "")
            assert len(srv.requests) == 1  # charged after the first call, refused before the 2nd
            step = next(e for e in t.events(run.id) if e.kind == "step_completed")
            assert step.data["usage"]["input_tokens"] == 10**12  # saturated, not 10**30
        finally:
            t.close()


async def test_negative_usage_fails_the_call_clearly_and_refunds_nothing(db_path: str) -> None:
    liar = {"prompt_tokens": -(10**9), "completion_tokens": 5}
    async with HostileServer(Reply.json(chat_reply(usage=liar))) as srv:
        URL["base"] = srv.base_url
        t = _tether(db_path)
        try:
            run = await t.run(spender, {"calls": 1}, options={"budget": {"tokens_in": 10**6}})
            assert run.status == "failed", (run.status, run.error)
            err = json.dumps(run.error)
            assert "ModelResponseError" in err
            assert "usage.prompt_tokens is negative" in err
            failed = [e for e in t.events(run.id) if e.kind == "step_failed"]
            assert failed and "usage.prompt_tokens is negative" in json.dumps(failed[0].data)
        finally:
            t.close()


async def test_echoed_api_key_never_reaches_the_journal(db_path: str) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "auth": f"Bearer {KEY}"}}
    async with HostileServer(Reply.json(body, status=401)) as srv:
        URL["base"] = srv.base_url
        t = _tether(db_path)
        try:
            run = await t.run(spender, {"calls": 1})
            assert run.status == "failed"
            everything = json.dumps(run.error) + "".join(
                json.dumps(e.data, default=str) for e in t.events(run.id)
            )
            assert "HTTP 401" in everything and "check the API key" in everything
            assert KEY not in everything and "HOSTILE0123" not in everything
            assert "[REDACTED]" in everything
        finally:
            t.close()


async def test_fallback_after_the_first_provider_breaks_in_each_way(db_path: str) -> None:
    """Each way the first endpoint breaks is retried, then the fallback answers; a broken pair
    fails the run with every model's error named."""
    broken = [
        Reply(headers={"content-type": "text/html"}, pieces=[(0.0, b"<html>oops</html>")]),
        Reply.json({"choices": "nope"}),
        Reply.json(chat_reply(usage={"prompt_tokens": "many"})),
        Reply.json({"error": "overloaded"}, status=503, **{"retry-after": "-3"}),
    ]
    for bad in broken:
        async with HostileServer(bad) as one, HostileServer(Reply.json(chat_reply())) as two:
            URL["base"], URL["second"] = one.base_url, two.base_url
            t = _tether(db_path)
            try:
                run = await t.run(fallback_once, {})
                assert run.status == "succeeded", (bad, run.error)
                assert run.result == "hi"
                assert len(one.requests) == 2 and len(two.requests) == 1  # retried, then fell
            finally:
                t.close()
    async with HostileServer(broken[1]) as one, HostileServer(broken[2]) as two:
        URL["base"], URL["second"] = one.base_url, two.base_url
        t = _tether(db_path)
        try:
            run = await t.run(fallback_once, {})
            assert run.status == "failed"
            err = json.dumps(run.error)
            assert "AllModelsFailedError" in err
            assert "choices is str" in err and "usage.prompt_tokens is str" in err
        finally:
            t.close()
