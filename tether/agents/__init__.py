"""Built-in agent strategies, written on the runtime API (``ctx.model``, ``ctx.tool``, ...).

Strategies make every model and tool call through :class:`Governed`, so they run under the guards
(``ctx.guards``, or ``guards=``) whenever there are any.
"""

from tether.agents.governed import Governed
from tether.agents.react import (
    ExampleStep,
    MaxStepsExceeded,
    ReActAgent,
    ReActError,
    ReActEvent,
    ReActExample,
    RepeatedCallLimit,
    build_prompt,
    react,
    step_schema,
)

__all__ = [
    "ExampleStep",
    "Governed",
    "MaxStepsExceeded",
    "ReActAgent",
    "ReActError",
    "ReActEvent",
    "ReActExample",
    "RepeatedCallLimit",
    "build_prompt",
    "react",
    "step_schema",
]
