"""Retry around fallback, and the tries behind an answer, against real loopback servers and the
real runtime: what the journal's model-call record says when the primary failed first.
"""

from __future__ import annotations

import json
from typing import Any

from tests.models.hostile_provider_support import HostileServer, Reply, chat_reply
from tether import Tether
from tether.models import FallbackModel, Message, OpenAIChatModel, RetryModel
from tether.observe.timeline import describe
from tether.store.vocabulary import model_call

URL: dict[str, str] = {}  # the servers' base URLs, set by each test before the run
KEY = "sk-live-ATTEMPTS0123456789"


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def _pair() -> tuple[OpenAIChatModel, OpenAIChatModel]:
    return (OpenAIChatModel("gpt-4o", base_url=URL["first"], api_key=KEY, timeout=5),
            OpenAIChatModel("gpt-4o-mini", base_url=URL["second"], api_key=KEY, timeout=5))


async def test_retry_around_fallback_waits_as_asked_and_tries_the_chain_again() -> None:
    def first(n: int, body: bytes) -> Reply:
        if n == 1:
            return Reply.json({"error": "slow down"}, status=429, **{"retry-after": "3"})
        return Reply.json(chat_reply({"role": "assistant", "content": "from first"}))

    down = Reply.json({"error": "overloaded"}, status=503)
    async with HostileServer(first) as one, HostileServer(down) as two:
        URL["first"], URL["second"] = one.base_url, two.base_url
        sleeps = Sleeps()
        model = RetryModel(FallbackModel(*_pair()), jitter=False, initial_delay=0.5,
                           max_delay=20, sleep=sleeps)
        try:
            r = await model.complete([Message.user("x")])
        finally:
            await model.aclose()
    assert r.text == "from first"
    assert sleeps.slept == [3.0]
    assert (len(one.requests), len(two.requests)) == (2, 1)
    assert [(t.model, t.error_type) for t in r.attempts] == [
        ("openai:gpt-4o", "ModelRateLimitError"),
        ("openai:gpt-4o-mini", "ModelServerError"),
        ("openai:gpt-4o", None),
    ]


async def fallback_once(ctx: Any, input: Any) -> str | None:
    model = FallbackModel(*_pair())
    try:
        return (await ctx.model(model, [Message.user("q")], validate=False)).text
    finally:
        await model.aclose()


async def test_the_journal_shows_why_the_primary_failed(db_path: str) -> None:
    echo = {"error": {"message": f"upstream refused Bearer {KEY}"}}
    slow_failure = Reply(status=500, headers={"content-type": "application/json"},
                         pieces=[(0.2, json.dumps(echo).encode())])
    async with HostileServer(slow_failure) as one, \
            HostileServer(Reply.json(chat_reply(usage={"prompt_tokens": 3}))) as two:
        URL["first"], URL["second"] = one.base_url, two.base_url
        t = Tether(db_path, lease_ttl=5.0)
        try:
            run = await t.run(fallback_once, {})
            assert run.status == "succeeded", run.error
            events = t.events(run.id)
        finally:
            t.close()
    step = next(e for e in events if e.kind == "step_completed" and e.name.startswith("model:"))
    attempts = step.data["response"]["attempts"]
    assert [(a["model"], a["error_type"]) for a in attempts] == [
        ("openai:gpt-4o", "ModelServerError"), ("openai:gpt-4o-mini", None)]
    assert "HTTP 500" in attempts[0]["error"] and "[REDACTED]" in attempts[0]["error"]
    assert attempts[0]["duration_s"] >= 0.2
    assert step.data["usage"]["input_tokens"] == 3
    everything = "".join(json.dumps(e.data, default=str) for e in events)
    assert KEY not in everything and "ATTEMPTS0123" not in everything
    # and `tether show` says so on the model call's line
    call = model_call(step)
    assert call is not None and len(call.attempts) == 2
    line = describe(step)
    assert "after openai:gpt-4o: ModelServerError: HTTP 500" in line and KEY not in line
