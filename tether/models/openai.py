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

from tether.models._openai_wire import StreamAssembler, parse_completion
from tether.models._protocol import Model, ToolChoice
from tether.models._wire import (
    MAX_RESPONSE_BYTES,
    Deadline,
    Wire,
    read_body,
    redirect_refused,
    sse_data,
)
from tether.models.errors import (
    ModelConnectionError,
    ModelError,
    ModelResponseError,
    ModelTimeoutError,
    api_key_hint,
    http_error,
)
from tether.models.messages import (
    Message,
    MessageLike,
    ModelResponse,
    StreamEvent,
    ToolDefinition,
    ToolLike,
    as_request,
)


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
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        json_schema_mode: str = "json_schema",
        stream_usage: bool = True,
        default_params: dict[str, Any] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        """`json_schema_mode`: "json_schema" (OpenAI, vLLM, llama.cpp) or "json_object" (the older
        `{"type": "json_object", "schema": ...}` form some servers need). `api_key` defaults to
        `$OPENAI_API_KEY`; local servers need none. `base_url` defaults to `$OPENAI_BASE_URL`,
        else OpenAI's (as the `openai` package does). `timeout` bounds the whole call (a server
        that drips bytes or never ends a stream is cut off), not just each read;
        `max_response_bytes` bounds the decompressed reply.
        """
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._key_hint = api_key_hint(self.api_key, "OPENAI_API_KEY", from_env=api_key is None)
        self.json_schema_mode = json_schema_mode
        self.stream_usage = stream_usage
        self.default_params = dict(default_params or {})
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if self.api_key:
            self._headers["Authorization"] = f"Bearer {self.api_key}"
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._wire = Wire(self.url, self.name)
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
        return parse_completion(self._wire, data, self.model)

    def _transport_error(self, exc: httpx.HTTPError) -> ModelError:
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{self.url} did not answer in time ({type(exc).__name__}); "
                "raise `timeout` or check the server's load",
                model=self.name,
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.DecodingError):
            # reached, but the reply broke off or was garbled: "is the server running?" would
            # send the operator looking in the wrong place
            return ModelConnectionError(
                f"{self.url} broke off or garbled its reply: {type(exc).__name__}: {exc}; "
                "the server or a proxy in between cut the connection; a retry may help",
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
        deadline = Deadline(self.timeout, self._wire)
        try:
            async with self._client.stream(
                "POST", self.url, content=orjson.dumps(body), headers=self._headers
            ) as resp:
                raw = await read_body(resp, deadline, self.max_response_bytes)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        self._check_status(resp, raw)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            snippet = raw[:200].decode("utf-8", errors="replace")
            raise ModelResponseError(
                f"{self.url} returned a body that is not JSON "
                f"(content-type {resp.headers.get('content-type', 'none')!r}): {snippet!r}",
                model=self.name,
            ) from exc
        return self.parse_response(data)

    def _check_status(self, resp: httpx.Response, raw: bytes) -> None:
        """Raise for an error status (redacted body, `Retry-After`) or a redirect, which is
        never followed: the request carries the API key, and another host must not get it."""
        text = raw.decode("utf-8", errors="replace")
        if 300 <= resp.status_code < 400:
            raise redirect_refused(resp.status_code, self.url,
                                   resp.headers.get("location", "nowhere"), [self.api_key],
                                   self.name, body=text)
        if resp.status_code >= 400:
            raise http_error(
                resp.status_code, text, url=self.url, model=self.name,
                headers=resp.headers, secrets=[self.api_key], key_hint=self._key_hint,
            )

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
        acc = StreamAssembler(self._wire, self.model)
        deadline = Deadline(self.timeout, self._wire)
        try:
            async with self._client.stream(
                "POST", self.url, content=orjson.dumps(body), headers=self._headers
            ) as resp:
                if resp.status_code >= 300:
                    self._check_status(
                        resp, await read_body(resp, deadline, self.max_response_bytes)
                    )
                async for payload in sse_data(resp, deadline, self.max_response_bytes):
                    if payload == "[DONE]":
                        acc.done = True
                        break
                    delta = acc.feed(payload)
                    if delta:
                        yield StreamEvent(text_delta=delta)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        yield StreamEvent(response=acc.response())

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
