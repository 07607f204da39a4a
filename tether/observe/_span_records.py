"""A span as plain data, and the deterministic ids that let the same journal give the same trace
anywhere (drawn, exported after the fact, exported live, resumed in another process)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tether.store import Event

#: the GenAI semantic conventions these spans follow (still "Development" upstream)
SEMCONV_VERSION = "1.41.0"
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

SpanKind = Literal["internal", "client"]
SpanStatus = Literal["unset", "ok", "error"]
AttrValue = str | int | float | bool | list[str]
#: a step started and not ended: its `step_started` event's seq, time, step name and data, and
#: the id of the run's span it belongs to (the span is made when the step ends)
OpenStep = tuple[int, float, str | None, dict[str, Any], str]


@dataclass(slots=True)
class SpanEvent:
    """Something that happened inside a span (a guard decision, a halt, a log line)."""

    name: str
    ts: float
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(slots=True)
class SpanRecord:
    """One span, ready to hand to an OpenTelemetry exporter or to draw."""

    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None
    run_id: str
    start: float  # the journal's timestamps (seconds since the epoch)
    end: float
    start_seq: int
    end_seq: int  # the journal event that closed it (what a live exporter's watermark counts)
    kind: SpanKind = "internal"
    status: SpanStatus = "unset"
    status_message: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.end - self.start) * 1000)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration_ms"] = round(self.duration_ms, 3)
        return out


def capture_content(content: bool | None = None) -> bool:
    """Whether message content goes on spans: `content` if given, else the conventions' env
    switch (`true`, case-insensitive, turns it on; anything else leaves it off)."""
    if content is not None:
        return content
    return os.environ.get(CONTENT_ENV, "").strip().lower() == "true"


def trace_id_of(root_run_id: str) -> str:
    return _digest("trace", root_run_id, size=16)


def span_id_of(run_id: str, what: str) -> str:
    return _digest(run_id, what, size=8)


def _digest(*parts: str, size: int) -> str:
    raw = hashlib.sha256("\x1f".join(parts).encode()).digest()[:size]
    if not any(raw):  # an all-zero id is invalid in OpenTelemetry
        raw = b"\x01" + raw[1:]
    return raw.hex()


def run_span_id(run_id: str, attempt_seq: int | None = None) -> str:
    """The `invoke_agent` span of a run's first attempt (`attempt_seq` None) or of the attempt
    a `run_retried` event at that seq started."""
    return span_id_of(run_id, "run" if attempt_seq is None else f"run@{attempt_seq}")


def spawn_span_id(parent_run_id: str, child_run_id: str) -> str:
    """A child's spawn in its parent: known from the child's record alone, so a child's spans
    find their parent without reading the parent's journal."""
    return span_id_of(parent_run_id, f"spawn:{child_run_id}")


def end_span(span: SpanRecord, e: Event) -> None:
    span.end = max(e.ts, span.start)
    span.end_seq = e.seq
