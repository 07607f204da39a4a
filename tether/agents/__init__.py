"""Built-in agent strategies, written on the runtime API (``ctx.model``, ``ctx.tool``, ...)."""

from tether.agents.react import (
    ExampleStep,
    MaxStepsExceeded,
    ReActAgent,
    ReActError,
    ReActEvent,
    ReActExample,
    build_prompt,
    react,
    step_schema,
)

__all__ = [
    "ExampleStep",
    "MaxStepsExceeded",
    "ReActAgent",
    "ReActError",
    "ReActEvent",
    "ReActExample",
    "build_prompt",
    "react",
    "step_schema",
]
