"""A deterministic model for tests: queued responses, or a function of the conversation.

Like Pydantic AI's TestModel/FunctionModel: no network, no randomness, and every call is recorded
in `.calls` so tests can assert on exactly what an agent sent. A queued script is resumable: a run
resumed in another process replays its earlier calls from the journal, the runtime reports each
one (`replayed`), and the script continues with the next item.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tether.models._protocol import Model, ToolChoice
from tether.models.errors import ModelError
from tether.models.messages import (
    Message,
    MessageLike,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    ToolLike,
    Usage,
    as_request,
)


@dataclass(frozen=True)
class ScriptedCall:
    """What the model was asked, as recorded by `ScriptedModel`."""

    messages: list[Message]
    tools: list[ToolDefinition]
    output_schema: dict[str, Any] | None
    tool_choice: ToolChoice | None
    params: dict[str, Any]


ScriptItem = ModelResponse | str | ToolCall | list[ToolCall] | dict[str, Any] | BaseException
ResponseFn = Callable[[ScriptedCall], "ScriptItem | Awaitable[ScriptItem]"]


def _count_tokens(text: str | None) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split()) if text else 0


class ScriptedModel(Model):
    """Returns the queued items in order, or `fn(call)` for every call.

    Items: a `ModelResponse`; a `str` (text reply); a `ToolCall` or list of them (parallel calls);
    a dict (validated as a `ModelResponse`); an exception instance (raised, to test error paths).
    """

    def __init__(
        self,
        responses: Iterable[ScriptItem] | None = None,
        *,
        fn: ResponseFn | None = None,
        name: str = "scripted",
    ) -> None:
        if (responses is None) == (fn is None):
            raise ValueError("give exactly one of `responses` or `fn`")
        self._queue: list[ScriptItem] = list(responses or [])
        self._fn = fn
        self.name = name
        self.calls: list[ScriptedCall] = []
        self.replays: list[ModelResponse] = []  # answered by the journal, see `replayed`

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def replayed(self, messages: Sequence[Message], response: ModelResponse) -> None:
        """The journal answered one of this script's calls (a run resumed in a new process):
        that item is used up, so the next live call gets the next item, not the first again."""
        self.replays.append(response)
        if self._fn is None and self._queue:
            self._queue.pop(0)

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
        call = ScriptedCall(msgs, tls, output_schema, tool_choice, dict(params))
        self.calls.append(call)
        if self._fn is not None:
            item = self._fn(call)
            if inspect.isawaitable(item):
                item = await item
        elif self._queue:
            item = self._queue.pop(0)
        else:
            raise ModelError(
                f"scripted model {self.name!r} ran out of responses after {len(self.calls) - 1} "
                "call(s); queue more items",
                model=self.name,
            )
        return self._to_response(item, msgs, len(self.calls))

    def _to_response(self, item: Any, messages: list[Message], n: int) -> ModelResponse:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ModelResponse):
            resp = item
        elif isinstance(item, str):
            resp = ModelResponse(text=item, finish_reason="stop")
        elif isinstance(item, ToolCall):
            resp = ModelResponse(tool_calls=[item], finish_reason="tool_calls")
        elif isinstance(item, list):
            resp = ModelResponse(tool_calls=list(item), finish_reason="tool_calls")
        elif isinstance(item, dict):
            resp = ModelResponse.model_validate(item)
        else:
            raise TypeError(f"scripted model cannot return {type(item).__name__}")
        update: dict[str, Any] = {}
        if not resp.model:
            update["model"] = self.name
        if resp.usage == Usage():
            prompt = " ".join(m.content or "" for m in messages)
            out = (resp.text or "") + " ".join(f"{c.name} {c.arguments}" for c in resp.tool_calls)
            update["usage"] = Usage(
                input_tokens=_count_tokens(prompt), output_tokens=_count_tokens(out)
            )
        if resp.tool_calls and any(not c.id for c in resp.tool_calls):
            update["tool_calls"] = [
                c if c.id else c.model_copy(update={"id": f"call_{n}_{i}"})
                for i, c in enumerate(resp.tool_calls)
            ]
        return resp.model_copy(update=update) if update else resp


def tool_call(name: str, arguments: dict[str, Any] | None = None, id: str = "") -> ToolCall:
    """Shorthand for scripts: `tool_call("search", {"q": "x"})`."""
    return ToolCall(id=id, name=name, arguments=arguments or {})
