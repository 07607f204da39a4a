"""Loop detection: a circuit breaker on the agent's own behaviour.

Three signals: (a) the same tool call with the same arguments N times — "the same" after
canonicalisation, so re-spacing, re-casing, re-ordering keys, accents, invisible or compatibility
unicode characters, `1` vs `1.0`, or arguments sent as a JSON string do not disguise a repeat;
(b) thoughts that keep coming back: over the last `window` thoughts each is semantically the
same (cosine >= threshold) as the one 1, 2, ... `thought_cycle` thoughts before it — one
thought restated, or a cycle such as A, B, A, B; (c) the same error N times. The first time a
signal fires the detector returns an `Intervention` (warn in the next prompt, trim short-term
history, raise temperature, re-plan); if the signal is still true on the next observation of
that kind after `max_interventions` interventions, it raises `LoopHalt`.

The detector is pure state fed by observations: the runtime feeds it from the journal (live and on
replay alike), so its decisions are reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import unicodedata
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
    thought_cycle: int = 3  # ... each as similar to the one up to this many thoughts before
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
    """The call as a repeat detector sees it: near-duplicates share a fingerprint.

    BLAKE2b (128 bits: no collision to craft), not SHA-256: hashlib's SHA-256 goes through
    OpenSSL's digest lookup on every call, several µs on a busy worker; a fingerprint only
    lives in one detector's memory, so the function can change without migrating anything."""
    body = orjson.dumps([canonical_text(tool), canonical_args(args)],
                        option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def canonical_args(value: Any) -> Any:
    """Arguments with the variations that do not change what a call asks for taken out: text
    is `canonical_text`, numbers that are equal compare equal (`1`, `1.0`, `1e0`), a JSON object
    or array sent as a string is parsed. Order within lists, booleans vs numbers and the
    characters of words are kept: "day 1" and "day 2" stay two calls."""
    if type(value) is int:  # the commonest argument after text (a bool is not exactly an int)
        return value
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                return canonical_args(parsed)
        return canonical_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return {canonical_text(str(k)): canonical_args(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_args(v) for v in value]
    return canonical_text(str(value))


def canonical_text(text: str) -> str:
    """Compatibility forms folded (fullwidth letters, ligatures), accents and other combining
    marks dropped, invisible format characters dropped (zero-width spaces and joiners,
    byte-order marks), case folded, runs of whitespace of any kind made one space, ends
    trimmed."""
    if text.isascii():
        # the same result without the four Unicode passes (most arguments are ASCII): ASCII is
        # its own NFKC/NFKD form, its case folding is `lower()`, none of it is Cf or Mn
        return " ".join(text.lower().split())
    return _canonical_unicode(text)


def _canonical_unicode(text: str) -> str:
    """`canonical_text` for any text (the ASCII shortcut must agree with it: tested)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    kept = "".join(c for c in folded if unicodedata.category(c) not in ("Cf", "Mn"))
    return " ".join(unicodedata.normalize("NFKC", kept).split())


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
        self._thoughts: deque[np.ndarray] = deque(
            maxlen=c.thought_window + max(1, c.thought_cycle) - 1)
        self._errors: deque[str] = deque(maxlen=c.error_window)
        self.interventions: dict[str, int] = {}
        self._armed: dict[str, bool] = {}  # signal fired and intervened: next positive halts

    # ------------------------------------------------------------ observations
    def observe_tool_call(self, tool: str, args: Any, *,
                          fingerprint: str | None = None) -> Intervention | None:
        """`fingerprint`: `call_fingerprint(tool, args)` when the caller has it already (the
        guards computed it for the call when it started, on these very arguments)."""
        fp = fingerprint if fingerprint is not None else call_fingerprint(tool, args)
        self._calls.append(fp)
        n = self._calls.count(fp)
        fired = n >= self.config.repeat_calls
        evidence = ""
        if fired:  # only a signal that fires says why (a serialization per call otherwise)
            args_text = orjson.dumps(args, option=orjson.OPT_SORT_KEYS, default=str).decode()
            evidence = f"tool '{tool}' called {n} times with the same arguments {args_text[:200]}"
        return self._signal("repeated_call", fired, evidence)

    def repeats(self, fingerprint: str) -> int:
        """How many times the call with this `call_fingerprint` is in the recent window (read
        only: nothing is observed)."""
        return self._calls.count(fingerprint)

    def observe_thought(self, text: str) -> Intervention | None:
        if self.embedder is None or not text.strip():
            return None
        vec = self.embedder.embed([text])[0]
        return self.observe_thought_vector(vec)

    def observe_thought_vector(self, vec: np.ndarray) -> Intervention | None:
        self._thoughts.append(np.asarray(vec, dtype=np.float32))
        threshold = self.config.thought_similarity
        period = self._cycle()
        fired = period is not None
        # Once armed (after an intervention) one more returning thought is enough: "persists".
        returns = self._returns()
        if self._armed.get("semantic_loop") and returns:
            fired = max(returns) >= threshold
        if period is None or period == 1:
            sims = self.thought_similarities()
            evidence = (f"last {min(len(self._thoughts), self.config.thought_window)} thoughts "
                        f"have consecutive cosine similarities {[round(s, 3) for s in sims]} "
                        f"(threshold {threshold})")
        else:
            sims = self._lagged(period)
            evidence = (f"the last {len(sims) + period} thoughts go round a cycle of {period}: "
                        f"each is as similar to the thought {period} before it as "
                        f"{[round(s, 3) for s in sims]} (threshold {threshold})")
        return self._signal("semantic_loop", fired, evidence)

    def observe_error(self, error: str) -> Intervention | None:
        norm = normalise_error(error)
        self._errors.append(norm)
        n = self._errors.count(norm)
        fired = n >= self.config.repeat_errors
        evidence = f"the same error was observed {n} times: {error[:200]}" if fired else ""
        return self._signal("repeated_error", fired, evidence)

    def thought_similarities(self) -> list[float]:
        """Cosines of consecutive thoughts over the last `thought_window`."""
        t = list(self._thoughts)[-self.config.thought_window:]
        return [float(np.dot(a, b)) for a, b in itertools.pairwise(t)]

    def _lagged(self, period: int) -> list[float]:
        """Cosines of each of the last `thought_window - 1` thoughts with the one `period`
        before it (fewer while there are not enough thoughts)."""
        t = list(self._thoughts)
        pairs = min(self.config.thought_window - 1, len(t) - period)
        return [float(np.dot(t[-i], t[-i - period])) for i in range(pairs, 0, -1)]

    def _cycle(self) -> int | None:
        """The shortest period p (1 = the same thought restated) such that each of the last
        `thought_window - 1` thoughts is similar to the one p before it."""
        need = self.config.thought_window - 1
        for period in range(1, max(1, self.config.thought_cycle) + 1):
            sims = self._lagged(period)
            if need > 0 and len(sims) == need and all(
                    s >= self.config.thought_similarity for s in sims):
                return period
        return None

    def _returns(self) -> list[float]:
        """Cosines of the newest thought with each of the `thought_cycle` before it."""
        t = list(self._thoughts)
        return [float(np.dot(t[-1], t[-1 - p]))
                for p in range(1, min(max(1, self.config.thought_cycle), len(t) - 1) + 1)]

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
