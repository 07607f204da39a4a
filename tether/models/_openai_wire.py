"""Reading Chat Completions replies (whole and streamed) field by field, trusting none of them.

Split from `openai.py` so that the client stays about HTTP and this module about the shape of
what comes back: each field is checked with `Wire`, so a hostile or broken server produces a
`ModelResponseError` naming the field ("choices[0].message.tool_calls[3].function.arguments is
int 5, expected a string") rather than a crash or a silently wrong response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tether.models._wire import MAX_TOOL_CALLS, Wire, unique_ids
from tether.models.errors import ModelResponseError
from tether.models.messages import FinishReason, ModelResponse, ToolCall, Usage
from tether.models.validation import parse_tool_arguments

FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# An index past this in a streamed tool-call delta is not a real parallel call.
_MAX_INDEX = MAX_TOOL_CALLS


def content_text(wire: Wire, value: Any, path: str) -> str | None:
    """Message content: a string, or a list of content parts whose text parts are joined."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise wire.bad(path, f"is {type(value).__name__}, expected a string or content parts")
    parts = value
    out = []
    for i, part in enumerate(parts):
        p = wire.obj(part, f"{path}[{i}]")
        if p.get("type") in ("text", "output_text"):
            out.append(wire.text(p.get("text"), f"{path}[{i}].text") or "")
    return "".join(out)


def finish_reason(wire: Wire, value: Any, path: str) -> FinishReason:
    return FINISH.get(wire.text(value, path) or "", "unknown")


def usage_of(wire: Wire, value: Any) -> Usage:
    usage = wire.obj(value, "usage")
    return Usage(
        input_tokens=wire.tokens(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        output_tokens=wire.tokens(usage.get("completion_tokens"), "usage.completion_tokens"),
    )


def tool_calls_of(wire: Wire, raw: list[tuple[str, str, Any]], path: str) -> list[ToolCall]:
    """(id, name, arguments) triples to `ToolCall`s with unique ids; arguments must be a JSON
    string (or an object, which some servers send); anything else is refused."""
    if len(raw) > MAX_TOOL_CALLS:
        raise wire.bad(path, f"has {len(raw)} tool calls, more than the {MAX_TOOL_CALLS} allowed")
    ids = unique_ids([cid or f"call_{i}" for i, (cid, _, _) in enumerate(raw)])
    calls = []
    for i, (_, name, arguments) in enumerate(raw):
        if arguments is not None and not isinstance(arguments, str | dict):
            raise wire.bad(
                f"{path}[{i}].function.arguments",
                f"is {type(arguments).__name__}, expected a JSON string",
            )
        args, unparsed = parse_tool_arguments(arguments)
        calls.append(ToolCall(id=ids[i], name=name, arguments=args, raw_arguments=unparsed))
    return calls


def parse_completion(wire: Wire, data: Any, default_model: str) -> ModelResponse:
    """A non-streamed Chat Completions body to a `ModelResponse`."""
    if not isinstance(data, dict):
        raise ModelResponseError(
            f"{wire.url} returned {type(data).__name__}, expected a JSON object", model=wire.model
        )
    choices = wire.items(data.get("choices"), "choices")
    if not choices:
        snippet = orjson.dumps(data)[:300].decode(errors="replace")
        raise ModelResponseError(
            f"{wire.url} returned no choices (model {default_model!r}): {snippet}",
            model=wire.model,
        )
    choice = wire.obj(choices[0], "choices[0]")
    msg = wire.obj(choice.get("message"), "choices[0].message")
    path = "choices[0].message.tool_calls"
    raw = []
    for i, tc in enumerate(wire.items(msg.get("tool_calls"), path)):
        tc = wire.obj(tc, f"{path}[{i}]")
        fn = wire.obj(tc.get("function"), f"{path}[{i}].function")
        raw.append((
            wire.ident(tc.get("id"), f"{path}[{i}].id"),
            wire.ident(fn.get("name"), f"{path}[{i}].function.name"),
            fn.get("arguments"),
        ))
    calls = tool_calls_of(wire, raw, path)
    finish = finish_reason(wire, choice.get("finish_reason"), "choices[0].finish_reason")
    return ModelResponse(
        text=content_text(wire, msg.get("content"), "choices[0].message.content") or None,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else finish,
        usage=usage_of(wire, data.get("usage")),
        model=wire.text(data.get("model"), "model") or default_model,
    )


@dataclass
class StreamAssembler:
    """Accumulates streamed chunks; `feed` returns the text delta of one chunk."""

    wire: Wire
    model: str
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish: str | None = None
    usage: Usage = field(default_factory=Usage)
    done: bool = False

    def feed(self, payload: str) -> str:
        w = self.wire
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise w.bad("a stream event", f"is not JSON: {payload[:200]!r}") from None
        chunk = w.obj(chunk, "a stream event")
        if chunk.get("error") is not None:
            err = chunk["error"]
            detail = err.get("message") if isinstance(err, dict) else err
            raise ModelResponseError(
                f"{w.url} reported an error in the middle of the stream: {str(detail)[:300]}",
                model=w.model,
            )
        self.model = w.text(chunk.get("model"), "model") or self.model
        if chunk.get("usage"):
            self.usage = usage_of(w, chunk["usage"])
        delta_text = ""
        for i, choice in enumerate(w.items(chunk.get("choices"), "choices")):
            choice = w.obj(choice, f"choices[{i}]")
            delta = w.obj(choice.get("delta"), f"choices[{i}].delta")
            piece = content_text(w, delta.get("content"), f"choices[{i}].delta.content")
            if piece:
                self.text.append(piece)
                delta_text += piece
            path = f"choices[{i}].delta.tool_calls"
            for j, tc in enumerate(w.items(delta.get("tool_calls"), path)):
                self._tool_delta(w.obj(tc, f"{path}[{j}]"), f"{path}[{j}]")
            if choice.get("finish_reason"):
                self.finish = w.text(choice["finish_reason"], f"choices[{i}].finish_reason")
        return delta_text

    def _tool_delta(self, tc: dict[str, Any], path: str) -> None:
        w = self.wire
        index = tc.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < _MAX_INDEX:
            raise w.bad(f"{path}.index", f"is {index!r}, expected an integer 0..{_MAX_INDEX - 1}")
        slot = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = w.ident(tc.get("id"), f"{path}.id") or slot["id"]
        fn = w.obj(tc.get("function"), f"{path}.function")
        slot["name"] += w.ident(fn.get("name"), f"{path}.function.name")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            kind = type(args).__name__
            raise w.bad(f"{path}.function.arguments", f"is {kind}, expected a string")
        slot["arguments"] += args or ""

    def response(self) -> ModelResponse:
        """The assembled reply; a stream cut off before its end is refused, not returned."""
        if self.finish is None and not self.text and not self.calls:
            raise self.wire.bad("the stream", "ended with no choices")
        if not self.done and self.finish is None:
            raise self.wire.bad(
                "the stream",
                "ended after a partial reply, without a finish_reason or [DONE]",
                "the connection was cut or the server stopped mid-reply; a retry may help",
            )
        raw = [(c["id"], c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]
        calls = tool_calls_of(self.wire, raw, "tool_calls")
        return ModelResponse(
            text="".join(self.text) or None,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else FINISH.get(self.finish or "", "unknown"),
            usage=self.usage,
            model=self.model,
        )
