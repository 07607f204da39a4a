"""An in-process GGUF model through llama-cpp-python (`pip install 'tether[local]'`).

Small local models are unreliable at free-form tool calling, so every structured reply is produced
under grammar-constrained decoding: the tool definitions (and output schema) are compiled into one
JSON schema, llama.cpp turns that into a GBNF grammar, and the sampler can only emit JSON of that
shape. The conversation is rendered in the same JSON protocol (assistant turns show the JSON they
produced, tool results come back as user turns), so the model sees one consistent format.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tether.models._cpu import require_cpu
from tether.models._protocol import Model, ToolChoice
from tether.models.errors import ModelResponseError, ModelUnavailableError
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
from tether.models.weights import DEFAULT_WEIGHTS, WeightsSpec, resolve_weights

MAX_PARALLEL_CALLS = 4


def _import_llama() -> Any:
    require_cpu()  # before the library is loaded: a clear error, never a SIGILL
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelUnavailableError(
            "the local provider needs llama-cpp-python: pip install 'tether[local]' "
            "(or `make setup`)"
        ) from exc
    return llama_cpp


_MAX_ENUM_SPAN = 256


def grammar_friendly(schema: Any) -> Any:
    """Tighten what llama.cpp's schema-to-grammar converter ignores, where that is cheap.

    The converter does not enforce `minimum`/`maximum`, so a small bounded integer range becomes an
    `enum` the grammar can enforce. Anything else is left for the validation layer to check.
    """
    if isinstance(schema, list):
        return [grammar_friendly(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: grammar_friendly(v) for k, v in schema.items()}
    if out.get("type") == "integer" and "enum" not in out:
        lo, hi = out.get("minimum"), out.get("maximum")
        if isinstance(lo, int) and isinstance(hi, int) and 0 <= hi - lo <= _MAX_ENUM_SPAN:
            return {"enum": list(range(lo, hi + 1))}
    return out


def decoding_schema(
    tools: list[ToolDefinition],
    output_schema: dict[str, Any] | None,
    tool_choice: ToolChoice | None,
    parallel_tool_calls: bool = True,
) -> dict[str, Any] | None:
    """The JSON schema the sampler is constrained to, or None for free text."""
    answer: dict[str, Any] = (
        grammar_friendly(output_schema) if output_schema is not None else {"type": "string"}
    )
    answer_obj = {
        "type": "object",
        "properties": {"answer": answer},
        "required": ["answer"],
        "additionalProperties": False,
    }
    if tools and tool_choice != "none":
        allowed = tools
        if tool_choice not in (None, "auto", "required"):
            allowed = [t for t in tools if t.name == tool_choice] or tools
        call_variants = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    "arguments": grammar_friendly(t.parameters),
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in allowed
        ]
        calls_obj = {
            "type": "object",
            "properties": {
                "tool_calls": {
                    "type": "array",
                    "items": call_variants[0]
                    if len(call_variants) == 1
                    else {"anyOf": call_variants},
                    "minItems": 1,
                    "maxItems": MAX_PARALLEL_CALLS if parallel_tool_calls else 1,
                }
            },
            "required": ["tool_calls"],
            "additionalProperties": False,
        }
        if tool_choice in (None, "auto"):
            return {"anyOf": [calls_obj, answer_obj]}
        return calls_obj
    if output_schema is not None:
        return answer_obj
    return None


def protocol_prompt(tools: list[ToolDefinition], output_schema: dict[str, Any] | None) -> str:
    lines = []
    if tools:
        lines.append("You can call these tools:")
        for t in tools:
            lines.append(
                f"- {t.name}: {t.description}\n  arguments schema: "
                + json.dumps(t.parameters, separators=(",", ":"))
            )
        lines.append(
            'To call tools, reply with JSON: {"tool_calls": [{"name": "<tool>", "arguments": '
            "{...}}]} (several calls may go in the list when they are independent). "
            "Tool results come back in the next message."
        )
    if output_schema is not None:
        lines.append(
            'To give the final answer, reply with JSON: {"answer": <value>} where the value '
            "matches this schema: " + json.dumps(output_schema, separators=(",", ":"))
        )
    elif tools:
        lines.append('To answer the user directly, reply with JSON: {"answer": "<text>"}.')
    return "\n".join(lines)


def render_messages(
    messages: list[Message],
    tools: list[ToolDefinition],
    output_schema: dict[str, Any] | None,
    structured: bool,
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    extra = protocol_prompt(tools, output_schema) if structured else ""
    system = [m.content for m in messages if m.role == "system" and m.content]
    if extra:
        system.append(extra)
    if system:
        out.append({"role": "system", "content": "\n\n".join(system)})
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "assistant":
            if m.tool_calls:
                content = json.dumps(
                    {
                        "tool_calls": [
                            {"name": c.name, "arguments": c.arguments} for c in m.tool_calls
                        ]
                    }
                )
            elif structured:
                content = json.dumps({"answer": m.content or ""})
            else:
                content = m.content or ""
            out.append({"role": "assistant", "content": content})
        elif m.role == "tool":
            label = f"{m.name} " if m.name else ""
            out.append(
                {
                    "role": "user",
                    "content": f"Result of tool {label}(call {m.tool_call_id}):\n{m.content or ''}",
                }
            )
        else:
            out.append({"role": "user", "content": m.content or ""})
    return out


class LocalModel(Model):
    """A GGUF model run in-process; calls are serialised: a llama.cpp context is not thread-safe."""

    def __init__(
        self,
        spec: WeightsSpec = DEFAULT_WEIGHTS,
        *,
        path: str | os.PathLike[str] | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        max_tokens: int = 512,
        allow_download: bool | None = None,
        chat_format: str | None = None,
    ) -> None:
        self.spec = spec
        self.name = f"local:{spec.name}"
        self._path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.seed = seed
        self.max_tokens = max_tokens
        self.allow_download = allow_download
        self.chat_format = chat_format
        self._llm: Any = None
        # A thread lock, not an asyncio one: calls run in worker threads, from any event loop.
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._calls = 0
        self.model_path: Path | None = None

    def load(self) -> Any:
        """Resolve, verify and load the weights (idempotent; called on first use)."""
        if self._llm is None:
            llama_cpp = _import_llama()
            self.model_path = resolve_weights(
                self.spec, self._path, allow_download=self.allow_download
            )
            self._llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                seed=self.seed,
                chat_format=self.chat_format,
                verbose=False,
            )
        return self._llm

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            llama_cpp = _import_llama()
            self._grammars[key] = llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _run(
        self,
        messages: list[Message],
        tools: list[ToolDefinition],
        output_schema: dict[str, Any] | None,
        tool_choice: ToolChoice | None,
        params: dict[str, Any],
    ) -> ModelResponse:
        llm = self.load()
        schema = decoding_schema(
            tools, output_schema, tool_choice, bool(params.get("parallel_tool_calls", True))
        )
        chat = render_messages(messages, tools, output_schema, structured=schema is not None)
        kwargs: dict[str, Any] = {
            "temperature": params.get("temperature", 0.0),
            "max_tokens": params.get("max_tokens", self.max_tokens),
            "seed": params.get("seed", self.seed),
        }
        for k in ("top_p", "top_k", "stop", "repeat_penalty"):
            if k in params:
                kwargs[k] = params[k]
        if schema is not None:
            kwargs["grammar"] = self._grammar(schema)
        result = llm.create_chat_completion(messages=chat, **kwargs)
        self._calls += 1
        choices = result.get("choices") or []
        if not choices:
            raise ModelResponseError("llama.cpp returned no choices", model=self.name)
        text = choices[0]["message"].get("content") or ""
        finish: FinishReason = "length" if choices[0].get("finish_reason") == "length" else "stop"
        u = result.get("usage") or {}
        usage = Usage(
            input_tokens=int(u.get("prompt_tokens") or 0),
            output_tokens=int(u.get("completion_tokens") or 0),
        )
        if schema is None:
            return ModelResponse(text=text, finish_reason=finish, usage=usage, model=self.name)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # Only possible when generation was cut by max_tokens; let validation report it.
            return ModelResponse(text=text, finish_reason="length", usage=usage, model=self.name)
        if isinstance(data, dict) and "tool_calls" in data:
            calls = [
                ToolCall(id=f"call_{self._calls}_{i}", name=c["name"], arguments=c["arguments"])
                for i, c in enumerate(data["tool_calls"])
            ]
            return ModelResponse(
                tool_calls=calls, finish_reason="tool_calls", usage=usage, model=self.name
            )
        answer = data.get("answer") if isinstance(data, dict) else data
        out_text = (
            answer if isinstance(answer, str) and output_schema is None else json.dumps(answer)
        )
        return ModelResponse(text=out_text, finish_reason=finish, usage=usage, model=self.name)

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
        return await asyncio.to_thread(
            self._run_locked, msgs, tls, output_schema, tool_choice, params
        )

    def _run_locked(self, *args: Any) -> ModelResponse:
        with self._lock:
            return self._run(*args)

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "close"):
            llm.close()
