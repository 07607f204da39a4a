"""Loop detection: a circuit breaker on the agent's own behaviour.

Three signals: (a) the same tool call with the same arguments N times, (b) consecutive thoughts
that stay semantically the same (cosine >= threshold between every consecutive pair over the last
`window` thoughts), (c) the same error N times. The first time a signal fires the detector returns
an `Intervention` (warn in the next prompt, trim short-term history, raise temperature, re-plan);
if the signal is still true on the next observation of that kind after `max_interventions`
interventions, it raises `LoopHalt`.

The detector is pure state fed by observations: the runtime feeds it from the journal (live and on
replay alike), so its decisions are reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tether.guards.embedding import Embedder
from tether.guards.errors import LoopHalt


@dataclass(frozen=True)
class LoopConfig:
    repeat_calls: int = 3  # (a) same call + same args this many times in the recent window
    call_window: int = 10
    thought_similarity: float = 0.95  # (b) cosine threshold
    thought_window: int = 5  # ... over the last N thoughts
    repeat_errors: int = 3  # (c) same (normalised) error this many times
    error_window: int = 10
    max_interventions: int = 1  # interventions per signal kind before a halt
    temperature_bump: float = 0.3
    keep_messages: int = 4  # short-term history kept after trimming


@dataclass(frozen=True)
class Intervention:
    """What the agent loop must do before its next model call."""

    kind: str  # "repeated_call" | "semantic_loop" | "repeated_error"
    message: str  # injected into the next prompt as a system/user warning
    evidence: str
    trim_history_to: int
    temperature_delta: float
    replan: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "evidence": self.evidence,
            "trim_history_to": self.trim_history_to,
            "temperature_delta": self.temperature_delta,
            "replan": self.replan,
        }


def call_fingerprint(tool: str, args: Any) -> str:
    """Argument order and whitespace do not disguise a repeat."""
    body = orjson.dumps([tool, args], option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(body).hexdigest()


_VOLATILE = re.compile(
    r"0x[0-9a-fA-F]+|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\d+"
)


def normalise_error(error: str) -> str:
    """Line numbers, addresses, ids and timings vary between otherwise identical errors."""
    return " ".join(_VOLATILE.sub("#", error).split()).lower()[:500]


@dataclass
class LoopDetector:
    embedder: Embedder | None = None  # None disables (b); the runtime passes the default one
    config: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        c = self.config
        self._calls: deque[str] = deque(maxlen=c.call_window)
        self._thoughts: deque[np.ndarray] = deque(maxlen=c.thought_window)
        self._errors: deque[str] = deque(maxlen=c.error_window)
        self.interventions: dict[str, int] = {}
        self._armed: dict[str, bool] = {}  # signal fired and intervened: next positive halts

    # ------------------------------------------------------------ observations
    def observe_tool_call(self, tool: str, args: Any) -> Intervention | None:
        fp = call_fingerprint(tool, args)
        self._calls.append(fp)
        n = sum(1 for f in self._calls if f == fp)
        fired = n >= self.config.repeat_calls
        args_text = orjson.dumps(args, option=orjson.OPT_SORT_KEYS, default=str).decode()
        evidence = f"tool '{tool}' called {n} times with the same arguments {args_text[:200]}"
        return self._signal("repeated_call", fired, evidence)

    def observe_thought(self, text: str) -> Intervention | None:
        if self.embedder is None or not text.strip():
            return None
        vec = self.embedder.embed([text])[0]
        return self.observe_thought_vector(vec)

    def observe_thought_vector(self, vec: np.ndarray) -> Intervention | None:
        self._thoughts.append(np.asarray(vec, dtype=np.float32))
        sims = self.thought_similarities()
        window = self.config.thought_window
        fired = len(self._thoughts) >= window and all(
            s >= self.config.thought_similarity for s in sims)
        # Once armed (after an intervention) one more similar thought is enough: "persists".
        if self._armed.get("semantic_loop") and sims:
            fired = sims[-1] >= self.config.thought_similarity
        evidence = (f"last {len(self._thoughts)} thoughts have consecutive cosine similarities "
                    f"{[round(s, 3) for s in sims]} (threshold {self.config.thought_similarity})")
        return self._signal("semantic_loop", fired, evidence)

    def observe_error(self, error: str) -> Intervention | None:
        norm = normalise_error(error)
        self._errors.append(norm)
        n = sum(1 for e in self._errors if e == norm)
        fired = n >= self.config.repeat_errors
        evidence = f"the same error was observed {n} times: {error[:200]}"
        return self._signal("repeated_error", fired, evidence)

    def thought_similarities(self) -> list[float]:
        t = list(self._thoughts)
        return [float(np.dot(a, b)) for a, b in itertools.pairwise(t)]

    # ----------------------------------------------------------------- escalation
    def _signal(self, kind: str, fired: bool, evidence: str) -> Intervention | None:
        if not fired:
            # the loop did not persist: the intervention worked, disarm
            self._armed[kind] = False
            return None
        if self._armed.get(kind) or self.interventions.get(kind, 0) >= \
                self.config.max_interventions:
            raise LoopHalt(kind, evidence)
        self.interventions[kind] = self.interventions.get(kind, 0) + 1
        self._armed[kind] = True
        c = self.config
        return Intervention(
            kind=kind,
            message=_MESSAGES[kind].format(evidence=evidence),
            evidence=evidence,
            trim_history_to=c.keep_messages,
            temperature_delta=c.temperature_bump,
        )


_MESSAGES = {
    "repeated_call": (
        "WARNING from the runtime: you are repeating yourself — {evidence}. Repeating it will not "
        "give a different result. Stop, re-read the goal, and write a new plan that tries a "
        "different approach. If you cannot make progress, say so and finish."
    ),
    "semantic_loop": (
        "WARNING from the runtime: your recent reasoning is going in circles — {evidence}. "
        "Do not restate the same thought. Re-plan from the goal: list what you know, what is "
        "missing, and one concrete different next action."
    ),
    "repeated_error": (
        "WARNING from the runtime: the same error keeps happening — {evidence}. Retrying the same "
        "way will fail again. Change the arguments, use another tool, or finish with what you have."
    ),
}
