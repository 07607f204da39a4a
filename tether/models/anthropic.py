"""Anthropic Messages API through the official SDK (`pip install 'tether[anthropic]'`).

Structured output uses a forced tool whose input schema is the output schema (the Messages API
has no response-format switch), and the tool's input comes back as the response text.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Sequence
from typing import Any

from tether.models._anthropic_http import cap_responses, model_error_behind
from tether.models._protocol import Model, ToolChoice
from tether.models._wire import MAX_RESPONSE_BYTES, MAX_TOOL_CALLS, Wire, unique_ids
from tether.models.errors import (
    ModelConnectionError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    api_key_hint,
    http_error,
)
from tether.models.messages import (
    FinishReason,
    Message,
    MessageLike,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    ToolLike,
    Usage,
    as_request,
)

OUTPUT_TOOL = "final_output"

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelUnavailableError(
            "the Anthropic provider needs the anthropic SDK: pip install 'tether[anthropic]'"
        ) from exc
    return anthropic


def messages_to_anthropic(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, messages); tool results become user turns, same-role turns are merged."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            role = "user"
            blocks.append(
                {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content or ""}
            )
        else:
            role = m.role
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for c in m.tool_calls:
                blocks.append(
                    {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), out


def tool_to_anthropic(t: ToolDefinition) -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "input_schema": t.parameters}


def _create_params(client: Any) -> set[str]:
    try:
        return set(inspect.signature(client.messages.create).parameters)
    except (TypeError, ValueError):  # pragma: no cover - exotic client objects
        return set()


class AnthropicModel(Model):
    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = 4096,
        http_client: Any = None,
        client: Any = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        """`client` takes a ready `anthropic.AsyncAnthropic`; otherwise one is built with the SDK's
        own retries off (retry is `RetryModel`'s job, so attempts are counted in one place).
        `http_client` must be an AsyncClient of the HTTP library the installed SDK uses (`httpx`
        before anthropic 2.x, `httpx2` since). `max_response_bytes` bounds the decompressed
        reply, as for `OpenAIChatModel`; it is enforced by a response hook added to the HTTP
        client (the one built here, or `http_client`), never to a ready `client`.
        """
        self.model = model
        self.name = f"anthropic:{model}"
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._anthropic = _import_anthropic()
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        self._key_hint = api_key_hint(self._api_key, "ANTHROPIC_API_KEY",
                                      from_env=api_key is None)
        self.max_response_bytes = max_response_bytes
        if client is None:
            if http_client is None:
                http_client = self._anthropic.DefaultAsyncHttpxClient()
            cap_responses(http_client, max_response_bytes, self.name, [self._api_key])
        self._client = client or self._anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )

    def build_request(
        self,
        messages: list[Message],
        *,
        tools: list[ToolDefinition],
        output_schema: dict[str, Any] | None,
        tool_choice: ToolChoice | None,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        system, msgs = messages_to_anthropic(messages)
        params = dict(params)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.pop("max_tokens", self.max_tokens),
            "messages": msgs,
        }
        if system:
            body["system"] = system
        api_tools = [tool_to_anthropic(t) for t in tools]
        if output_schema is not None:
            api_tools.append(
                {
                    "name": OUTPUT_TOOL,
                    "description": "Give the final answer as arguments of this tool.",
                    "input_schema": output_schema,
                }
            )
            if not tools:
                tool_choice = OUTPUT_TOOL
        if api_tools:
            body["tools"] = api_tools
            if tool_choice == "auto":
                body["tool_choice"] = {"type": "auto"}
            elif tool_choice == "required":
                body["tool_choice"] = {"type": "any"}
            elif tool_choice == "none":
                body["tool_choice"] = {"type": "none"}
            elif tool_choice is not None:
                body["tool_choice"] = {"type": "tool", "name": tool_choice}
        if params.pop("parallel_tool_calls", True) is False and api_tools:
            body.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True
        if "stop" in params:
            stop = params.pop("stop")
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        params.pop("seed", None)  # not supported by the Messages API
        body.update(params)
        return body

    def parse_response(
        self, data: dict[str, Any], *, output_tool: bool, url: str = "Anthropic"
    ) -> ModelResponse:
        """The Messages API body to a `ModelResponse`, every field checked (see `_wire`): the
        SDK builds its objects without validating them, so wrong types pass straight through."""
        w = Wire(url, self.name)
        if data.get("content") is None:
            raise ModelResponseError(
                f"Anthropic returned no content: {data!r:.300}", model=self.name
            )
        texts: list[str] = []
        raw: list[tuple[str, str, Any]] = []
        for i, b in enumerate(w.items(data.get("content"), "content")):
            b = w.obj(b, f"content[{i}]")
            if b.get("type") == "text":
                texts.append(w.text(b.get("text"), f"content[{i}].text") or "")
            elif b.get("type") == "tool_use":
                name = w.ident(b.get("name"), f"content[{i}].name")
                if output_tool and name == OUTPUT_TOOL:
                    texts = [json.dumps(b.get("input") or {}, ensure_ascii=False)]
                    continue
                raw.append((w.ident(b.get("id"), f"content[{i}].id"), name, b.get("input")))
        if len(raw) > MAX_TOOL_CALLS:
            raise w.bad("content", f"has {len(raw)} tool calls, more than {MAX_TOOL_CALLS}")
        ids = unique_ids([cid or f"toolu_{i}" for i, (cid, _, _) in enumerate(raw)])
        calls = [
            ToolCall(
                id=cid,
                name=name,
                arguments=inp if isinstance(inp, dict) else {},
                raw_arguments=None if isinstance(inp, dict) else json.dumps(inp),
            )
            for cid, (_, name, inp) in zip(ids, raw, strict=True)
        ]
        usage = w.obj(data.get("usage"), "usage")
        finish = _FINISH.get(w.text(data.get("stop_reason"), "stop_reason") or "", "unknown")
        if calls:
            finish = "tool_calls"
        elif output_tool and finish == "tool_calls":
            finish = "stop"
        return ModelResponse(
            text="".join(texts) or None,
            tool_calls=calls,
            finish_reason=finish,
            usage=Usage(
                input_tokens=w.tokens(usage.get("input_tokens"), "usage.input_tokens"),
                output_tokens=w.tokens(usage.get("output_tokens"), "usage.output_tokens"),
            ),
            model=w.text(data.get("model"), "model") or self.model,
        )

    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        a = self._anthropic
        msgs, tls = as_request(messages, tools)
        body = self.build_request(
            msgs,
            tools=tls,
            output_schema=output_schema,
            tool_choice=tool_choice,
            params=params,
        )
        url = f"{self._client.base_url}".rstrip("/") + "/v1/messages"
        accepted = _create_params(self._client)
        extra = {k: body.pop(k) for k in list(body) if accepted and k not in accepted}
        if extra:
            # Parameters this SDK version does not name (e.g. temperature in anthropic 2.x) still
            # reach the API, in the request body.
            body["extra_body"] = {**body.get("extra_body", {}), **extra}
        try:
            # the SDK's timeout bounds each read; this bounds the whole call (a server dripping
            # one byte a second would otherwise hold the worker indefinitely)
            async with asyncio.timeout(self.timeout):
                result = await self._client.messages.create(**body)
        except TimeoutError as exc:
            raise ModelTimeoutError(
                f"{url} did not finish its reply within the {self.timeout:g} s timeout; "
                "raise `timeout` or check the server's load",
                model=self.name,
            ) from exc
        except a.APITimeoutError as exc:
            raise ModelTimeoutError(
                f"{url} did not answer in time; raise `timeout`", model=self.name
            ) from exc
        except a.APIConnectionError as exc:
            if (refused := model_error_behind(exc)) is not None:
                raise refused from None  # the size cap, which the SDK wraps as a connection error
            raise ModelConnectionError(
                f"could not reach {url}: {exc}; check the network and base URL", model=self.name
            ) from exc
        except a.APIStatusError as exc:
            raise http_error(
                exc.status_code, exc.response.text, url=url, model=self.name,
                headers=exc.response.headers, secrets=[self._api_key],
                key_hint=self._key_hint,
            ) from exc
        except (a.APIResponseValidationError, ValueError) as exc:
            # ValueError: the SDK's JSON decoding of a body that is not JSON (an HTML page)
            raise ModelResponseError(
                f"{url} returned an unusable body ({type(exc).__name__}): {str(exc)[:300]}",
                model=self.name,
            ) from exc
        if hasattr(result, "model_dump"):
            data = result.model_dump(mode="json", warnings=False)
        else:
            data = dict(result)
        if not isinstance(data, dict):
            raise ModelResponseError(f"{url} returned {type(data).__name__}", model=self.name)
        return self.parse_response(data, output_tool=output_schema is not None, url=url)

    async def aclose(self) -> None:
        await self._client.close()
