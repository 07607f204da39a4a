"""The errors of the ReAct strategy: why a run gave no answer, said so it can be acted on."""

from __future__ import annotations

import json
from typing import Any

from tether.runtime.errors import TetherError


class ReActError(TetherError):
    """Base class for errors of the ReAct strategy."""


class MaxStepsExceeded(ReActError):
    """The agent used all its steps without giving a final answer."""

    def __init__(self, max_steps: int, trajectory: list[dict[str, Any]]) -> None:
        self.max_steps = max_steps
        self.trajectory = trajectory
        calls = [c for s in trajectory for c in s.get("calls", [])]
        last = ""
        if calls:
            c = calls[-1]
            last = f"; last call {c['tool']}({json.dumps(c['arguments'])[:120]}) -> " + (
                str(c["observation"])[:120]
            )
        super().__init__(
            f"ReAct gave no final answer within max_steps={max_steps} "
            f"({len(calls)} tool call(s){last}). Raise max_steps, give the model better tools "
            "or examples, or simplify the goal."
        )


class RepeatedCallLimit(ReActError):
    """The model kept proposing one identical call although each repeat was pointed out.

    Small models loop this way (the same lookup five times) until ``max_steps`` runs out; this
    stops the run at the first sign, before the repeat runs, and says what was repeated."""

    def __init__(self, call: str, steps: list[int], trajectory: list[dict[str, Any]]) -> None:
        self.call = call
        self.steps = steps
        self.trajectory = trajectory
        made = ", ".join(str(s) for s in steps[:-1])
        super().__init__(
            f"ReAct stopped at step {steps[-1]}: the model proposed {call} for the "
            f"{len(steps)}{_ordinal(len(steps))} time (before at step(s) {made}), although told "
            "it repeats itself. Give the model a worked example (examples=), clearer tools or "
            "goal, or raise max_repeats (None turns this check off).")


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
