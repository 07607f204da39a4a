"""Model calls as journaled runtime effects (`ctx.model(...)` delegates here).

Each model attempt is one `ctx.step` whose JSON result records the request hash, the response
and its usage/cost. On replay the step returns the recorded JSON and the model is never called;
the request is hashed again and compared, so code that now sends a different prompt fails loudly
with `NonDeterminismError` instead of silently reusing a stale answer; the model is told of each
call the journal answered (`Model.replayed`), so a stateful model (a script) resumes in step. The
validate/repair/feedback loop runs outside the steps, so each feedback round is its own
journaled call and replays exactly.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from tether.models._protocol import Model, ToolChoice
from tether.models.messages import (
    Message,
    MessageLike,
    ModelResponse,
    ToolDefinition,
    ToolLike,
    as_request,
    request_hash,
)
from tether.models.validation import complete_validated
from tether.store.vocabulary import model_step

from ..errors import NonDeterminismError
from .model_verdict import refused_entry, verdict, with_refused

# journal keys of the calls each model object has answered or been told about in this process:
# a model hears of a replayed call once, not again each time the same run is resumed here
_KNOWN_CALLS: weakref.WeakKeyDictionary[Model, set[str]] = weakref.WeakKeyDictionary()


def _tell_replayed(model: Model, record: dict[str, Any], history: list[Message],
                   response: ModelResponse) -> None:
    key = record.get("call_key")  # absent: answered by a guard, or journaled before the key
    if not isinstance(key, str):
        return
    known = _KNOWN_CALLS.setdefault(model, set())
    if key not in known:
        known.add(key)
        model.replayed(history, response)


async def model_effect(
    ctx: Any,
    model: Model,
    messages: Sequence[MessageLike],
    *,
    tools: Sequence[ToolLike] | None = None,
    output_schema: dict[str, Any] | None = None,
    tool_choice: ToolChoice | None = None,
    validate: bool = True,
    max_feedback: int = 2,
    **params: Any,
) -> ModelResponse:
    """Call `model` through `ctx.step`; with `validate`, tool calls and structured output are
    checked (and repaired where safe) and errors fed back at most `max_feedback` times before
    `ModelOutputError` is raised."""
    msgs, tool_defs = as_request(messages, tools)
    refused: list[dict[str, Any]] = []  # replies validation sent back, for the strategy

    async def one(
        history: list[Message],
        tls: list[ToolDefinition],
        schema: dict[str, Any] | None,
        choice: ToolChoice | None,
    ) -> ModelResponse:
        call_params = dict(params)
        if choice is not None:
            call_params["tool_choice"] = choice
        digest = request_hash(model.name, history, tls, schema, call_params)

        live = False

        async def call(idempotency_key: str) -> dict[str, Any]:
            nonlocal live
            response = await model.complete(
                history, tools=tls, output_schema=schema, tool_choice=choice, **params
            )
            live = True
            _KNOWN_CALLS.setdefault(model, set()).add(idempotency_key)
            return {
                "request_hash": digest,
                "call_key": idempotency_key,
                "model": response.model,
                "usage": response.usage.model_dump(),
                "cost_usd": response.cost_usd,
                "response": response.model_dump(mode="json"),
                # why validation refused it, journaled with it (see model_verdict)
                **(verdict(response, tls, schema, choice) if validate else {}),
            }

        record = await ctx.step(
            model_step(model.name),
            call,
            idempotent=True,
            meta={"kind": "model", "model": model.name, "request_hash": digest},
        )
        if record.get("request_hash") != digest:
            raise NonDeterminismError(
                ctx.run_id,
                model_step(model.name),
                f"a model request with hash {str(record.get('request_hash'))[:12]}",
                f"a different request (hash {digest[:12]}): the messages, tools, output schema "
                "or parameters changed",
            )
        response = ModelResponse.model_validate(record["response"])
        if (entry := refused_entry(record, response)) is not None:
            refused.append(entry)
        if not live:
            _tell_replayed(model, record, history, response)
        return response

    if not validate:
        return await one(msgs, tool_defs, output_schema, tool_choice)
    return with_refused(await complete_validated(
        one,
        msgs,
        tools=tool_defs,
        output_schema=output_schema,
        tool_choice=tool_choice,
        max_feedback=max_feedback,
        model_name=model.name,
    ), refused)
