"""The one model protocol every provider and wrapper implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from tether.models.messages import (
    Message,
    MessageLike,
    ModelResponse,
    StreamEvent,
    ToolLike,
)

ToolChoice = Literal["auto", "none", "required"] | str


class Model(ABC):
    """A language model: one async call from messages (+ tools, output schema) to a response.

    `tool_choice` is "auto", "none", "required" or a tool name. `output_schema` asks for a JSON
    object matching that schema as the text. Other keyword `params` (temperature, max_tokens,
    seed, stop, top_p) are passed through where the provider supports them.
    """

    name: str = "model"

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> ModelResponse:
        """The seam: what every provider implements and every wrapper calls on the model it
        wraps, so a wrapper sees exactly the call its caller made and composes with any other.
        Callers may pass messages and tools as dicts of the same shape; an implementation starts
        with `as_request(messages, tools)` to get `Message`s and `ToolDefinition`s (a wrapper
        too, so that a retry or a fallback reuses one normalised request)."""

    async def stream(
        self,
        messages: Sequence[MessageLike],
        *,
        tools: Sequence[ToolLike] | None = None,
        output_schema: dict[str, Any] | None = None,
        tool_choice: ToolChoice | None = None,
        **params: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Stream text deltas; the default yields the whole response at once."""
        response = await self.complete(
            messages, tools=tools, output_schema=output_schema, tool_choice=tool_choice, **params
        )
        if response.text:
            yield StreamEvent(text_delta=response.text)
        yield StreamEvent(response=response)

    def replayed(self, messages: Sequence[Message], response: ModelResponse) -> None:  # noqa: B027
        """Told, once per call and process, about a call the run's journal answered instead of
        this model (a resumed run replays its earlier calls without making them). A model whose
        answers depend on what it has already answered (a script) catches up here, so a run
        resumed in a new process continues where it stopped. The default keeps no such state."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections or weights; the default has nothing to release."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
