"""PII and secrets masked out of a span's free text before the span leaves the builder.

Why: a span goes to a trace backend, a third party the run's policy never granted anything. The
guards mask what the model reads, but the journal keeps what tools really returned and raised,
and the policy's reasons quote the arguments it judged (the real values a granted tool gets):
an error status quoting `Authorization: Bearer ...`, a tool result with a customer's card (with
content capture on), a denial reason `'jane@corp.example' not in [...]`. So every attribute or
event that holds text from the run (not a name, a number or an id) is masked with the PII
recognizers (`tether.guards.pii.Scrubber`), whether content capture is on or off: content capture
opts in to the conversation the model had, which holds placeholders, not the values behind them.

Only spans `SpanBuilder` makes pass here: the common steps `_wire_spans` encodes carry no free
text but a policy's reason, which it masks once per distinct decision. The recognizers are
imported on the first text to mask, so a run with no such text never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._span_records import AttrValue, SpanRecord

if TYPE_CHECKING:
    from tether.guards.pii import Scrubber

#: attributes (of spans and of their events) whose values are text from the run
FREE_TEXT = frozenset({
    "tether.guard.reason", "tether.model.rejected", "tether.reasons", "tether.tool.rejected",
    "gen_ai.output.messages", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "tether.tool.rationale", "tether.intervention.evidence", "tether.message", "tether.reason",
    "exception.message",
})


class SpanScrub:
    """Masks the free text of the spans of one run (one scrubber: a value keeps its
    placeholder across the run's spans)."""

    __slots__ = ("_scrubber",)

    def __init__(self) -> None:
        self._scrubber: Scrubber | None = None

    def text(self, text: str) -> str:
        if not text:
            return text
        if self._scrubber is None:
            from tether.guards.pii import Scrubber  # the recognizers: only when needed
            self._scrubber = Scrubber()
        return self._scrubber.text(text)

    def value(self, value: AttrValue) -> AttrValue:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.text(x) if isinstance(x, str) else x for x in value]
        return value

    def attrs(self, attrs: dict[str, AttrValue]) -> None:
        for key in FREE_TEXT.intersection(attrs):
            attrs[key] = self.value(attrs[key])

    def spans(self, spans: list[SpanRecord]) -> list[SpanRecord]:
        """`spans`, their free text masked in place."""
        for span in spans:
            self.attrs(span.attributes)
            if span.status_message:
                span.status_message = self.text(span.status_message)
            for event in span.events:
                self.attrs(event.attributes)
        return spans
