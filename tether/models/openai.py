"""OpenAI-compatible Chat Completions over HTTP (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio).

Plain httpx, no SDK: the wire format is small and every compatible server speaks it. Point
`base_url` at the server's `/v1` root, e.g. `http://127.0.0.1:11434/v1` for Ollama or
`http://127.0.0.1:8000/v1` for vLLM and `llama_cpp.server`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from tether.models._protocol import Model, ToolChoice
from tether.models.errors import (
    ModelConnectionError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    http_error,
)
from tether.models.messages import (
    FinishReason,
    Message,
    MessageLike,
    ModelResponse,
    StreamEvent,
    ToolCall,
    ToolDefinition,
    ToolLike,
    Usage,
    as_request,
)
from tether.models.validation import parse_tool_arguments

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def message_to_openai(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": c.raw_arguments
                    if c.raw_arguments is not None
                    else json.dumps(c.arguments, ensure_ascii=False),
                },
            }
            for c in m.tool_calls
        ]
    elif out["content"] is None:
        out["content"] = ""
    if m.name and m.role in ("user", "system"):
        out["name"] = m.name
    return out


def tool_to_openai(t: ToolDefinition) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    }


def tool_choice_to_openai(choice: ToolChoice) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


class OpenAIChatModel(Model):
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        json_schema_mode: str = "json_schema",
        stream_usage: bool = True,
        default_params: dict[str, Any] | None = None,
    ) -> None:
        """`json_schema_mode`: "json_schema" (OpenAI, vLLM, llama.cpp) or "json_object" (the older
        `{"type": "json_object", "schema": ...}` form some servers need). `api_key` defaults to
        `$OPENAI_API_KEY`; local servers need none.
        """
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.json_schema_mode = json_schema_mode
        self.stream_usage = stream_usage
        self.default_params = dict(default_params or {})
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if self.api_key:
            self._headers["Authorization"] = f"Bearer {self.api_key}"
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), transport=transport
        )

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build_request(
        self,
        messages: list[Message],
        *,
        tools: list[ToolDefinition],
        output_schema: dict[str, Any] | None,
        tool_choice: ToolChoice | None,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_to_openai(m) for m in messages],
        }
        if tools:
            body["tools"] = [tool_to_openai(t) for t in tools]
            if tool_choice is not None:
                body["tool_choice"] = tool_choice_to_openai(tool_choice)
        if output_schema is not None:
            if self.json_schema_mode == "json_object":
                body["response_format"] = {"type": "json_object", "schema": output_schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": output_schema},
                }
        body.update(self.default_params)
        body.update(params)
        return body

    def parse_response(self, data: Any) -> ModelResponse:
        if not isinstance(data, dict):
            raise ModelResponseError(
                f"{self.url} returned {type(data).__name__}, expected a JSON object",
                model=self.name,
            )
        choices = data.get("choices")
        if not choices:
            raise ModelResponseError(
                f"{self.url} returned no choices (model {self.model!r}): "
                f"{orjson.dumps(data)[:300].decode(errors='replace')}",
                model=self.name,
            )
        choice = choices[0]
        msg = choice.get("message") or {}
        calls = []
        for i, tc in enumerate(msg.get("tool_calls") or []):
            fn = tc.get("function") or {}
            args, raw = parse_tool_arguments(fn.get("arguments"))
            calls.append(
                ToolCall(
                    id=tc.get("id") or f"call_{i}",
                    name=fn.get("name", ""),
                    arguments=args,
                    raw_arguments=raw,
                )
            )
        finish = _FINISH.get(choice.get("finish_reason") or "", "unknown")
        if calls:
            finish = "tool_calls"
        usage = data.get("usage") or {}
        return ModelResponse(
            text=msg.get("content") or None,
            tool_calls=calls,
            finish_reason=finish,
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            ),
            model=data.get("model") or self.model,
        )

    def _transport_error(self, exc: httpx.HTTPError) -> ModelError:
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{self.url} did not answer in time ({type(exc).__name__}); "
                "raise `timeout` or check the server's load",
                model=self.name,
            )
        return ModelConnectionError(
            f"could not reach {self.url}: {type(exc).__name__}: {exc or 'connection failed'}; "
            "is the server running and the base URL right?",
            model=self.name,
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
        msgs, tls = as_request(messages, tools)
        body = self.build_request(
            msgs,
            tools=tls,
            output_schema=output_schema,
            tool_choice=tool_choice,
            params=params,
        )
        try:
            resp = await self._client.post(
                self.url, content=orjson.dumps(body), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if resp.status_code >= 400:
            raise http_error(resp.status_code, resp.text, url=self.url, model=self.name)
        try:
            data = resp.json()
        except ValueError as exc:
            raise ModelResponseError(
                f"{self.url} returned a body that is not JSON: {resp.text[:200]!r}",
                model=self.name,
            ) from exc
        return self.parse_response(data)

    async def stream(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Server-sent events: yields text deltas, then one event with the assembled response."""
        msgs, tls = as_request(messages, tools)
        body = self.build_request(
            msgs,
            tools=tls,
            output_schema=output_schema,
            tool_choice=tool_choice,
            params=params,
        )
        body["stream"] = True
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage: dict[str, Any] = {}
        model_name = self.model
        try:
            async with self._client.stream(
                "POST", self.url, content=orjson.dumps(body), headers=self._headers
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise http_error(resp.status_code, resp.text, url=self.url, model=self.name)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        chunk = orjson.loads(payload)
                    except orjson.JSONDecodeError as exc:
                        raise ModelResponseError(
                            f"{self.url} sent a malformed stream event: {payload[:200]!r}",
                            model=self.name,
                        ) from exc
                    model_name = chunk.get("model") or model_name
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            text.append(delta["content"])
                            yield StreamEvent(text_delta=delta["content"])
                        for tc in delta.get("tool_calls") or []:
                            slot = calls.setdefault(
                                int(tc.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                            )
                            slot["id"] = tc.get("id") or slot["id"]
                            fn = tc.get("function") or {}
                            slot["name"] += fn.get("name") or ""
                            slot["arguments"] += fn.get("arguments") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if finish is None and not text and not calls:
            raise ModelResponseError(f"{self.url} stream ended with no choices", model=self.name)
        tool_calls = []
        for i in sorted(calls):
            args, raw = parse_tool_arguments(calls[i]["arguments"])
            tool_calls.append(
                ToolCall(
                    id=calls[i]["id"] or f"call_{i}",
                    name=calls[i]["name"],
                    arguments=args,
                    raw_arguments=raw,
                )
            )
        yield StreamEvent(
            response=ModelResponse(
                text="".join(text) or None,
                tool_calls=tool_calls,
                finish_reason="tool_calls" if tool_calls else _FINISH.get(finish or "", "unknown"),
                usage=Usage(
                    input_tokens=int(usage.get("prompt_tokens") or 0),
                    output_tokens=int(usage.get("completion_tokens") or 0),
                ),
                model=model_name,
            )
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
