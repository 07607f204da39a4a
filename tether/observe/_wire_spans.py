"""A run's spans as OTLP bytes straight from its journal's events: what live export and
`export_run` hand the official OTLP exporters.

Why: tracing's budget is per durable step, and the cheapest steps (a scripted model, an
in-process tool: ~0.4 ms of CPU) leave it ~20 µs for 5%. Building each step's `SpanRecord` (a
dataclass, its attribute dict, the parsed call records) and encoding that took ~17-28 µs a step.
So the common steps (a model call, a tool call or a plain step that ended well, at its first
attempt, allowed or not judged by the policy, with no content captured) are encoded here from
their `step_started` and `step_completed` events into one `Span` message at once: the step's
name, kind and fixed attributes are bytes made once per model or tool, the trace id once per
run, the parent's once per attempt, a policy decision's once per rule. Every other span (the
run's, waits, children, failed steps, steps a guard answered, content) is built by
`SpanBuilder` and encoded by `SpanEncoder`, and the state the two share (a step's start, the
run's token totals, the model's proposals for the mind-log) is the builder's own.
tests/observe/test_wire_spans.py holds the bytes equal to `SpanBuilder`'s spans encoded on real
runs, so the two ways cannot drift apart.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.store import Event, NewEvent, RunRecord, loads
from tether.store import vocabulary as v

from ._otlp_wire import _FLAGS, SpanEncoder, _field
from ._run_spans import tree_runs
from ._span_parts import provider_of
from ._trace_marks import Queued
from .spans import AttrValue, SpanBuilder, SpanRecord

if TYPE_CHECKING:
    from tether.runtime import Tether

_pack_q = struct.Struct("<Q").pack
_OK = b"\x7a\x02\x18\x01" + _FLAGS  # Span.status (15) OK, then the flags
_EMPTY: dict[str, Any] = {}  # read only
_UNSEEN: Any = object()  # a shape not worked out yet
_ZERO_ID = bytes(8)  # an invalid span id (`_seq_span_raw` makes another)
_FAST = frozenset({"model", "tool", "step", "guard"})  # the families encoded here
_STARTED_KEPT = 64  # `step_started` data remembered by its JSON (a model's is new every call)
_DECISIONS_KEPT = 256
_new_event = object.__new__
_set_run, _set_seq, _set_kind, _set_key, _set_name, _set_data, _set_ts = (
    Event.__dict__[name].__set__ for name in ("run_id", "seq", "kind", "key", "name", "data",
                                              "ts"))

#: a step's span name and kind, its fixed attributes (each as a `Span.attributes` field), its
#: family and the model or tool it called
_WireShape = tuple[bytes, bytes, str, str]


def journal_event(run_id: str, seq: int, kind: str, key: str | None, name: str | None,
                  data: object, ts: float) -> Event:
    """`Event(...)` at half its cost (~1.0 µs, not ~2.1): the same frozen, hashable, equal
    record, its slots filled directly instead of by the frozen `__init__`'s
    `object.__setattr__` per field (tests/observe/test_live_handoff.py holds the two equal)."""
    e: Event = _new_event(Event)
    _set_run(e, run_id)
    _set_seq(e, seq)
    _set_kind(e, kind)
    _set_key(e, key)
    _set_name(e, name)
    _set_data(e, data)
    _set_ts(e, ts)
    return e


class WireSpans(SpanBuilder):
    """One run's spans as `(run id, end seq, ScopeSpans.spans field)`, fed its journal's events
    (`feed_event`) or the committer's (`feed_new`, not decoded yet)."""

    def __init__(self, run: RunRecord, encoder: SpanEncoder, *,
                 content: bool | None = None) -> None:
        super().__init__(run, content=content)
        self.encoder = encoder
        self._trace_field = b"\x0a\x10" + bytes.fromhex(self.trace_id)
        self._parent_fields: dict[str, bytes] = {}  # by the attempt's span id
        self._wire_shapes: dict[tuple[Any, ...], _WireShape | None] = {}
        self._answered: dict[str, bytes] = {}  # `gen_ai.response.model`, by the model's name
        self._finished: dict[str, bytes] = {}  # `gen_ai.response.finish_reasons`, by reason
        self._tokens_in = _int_heads(encoder, "gen_ai.usage.input_tokens")
        self._tokens_out = _int_heads(encoder, "gen_ai.usage.output_tokens")
        self._journal_seq = _int_heads(encoder, "tether.journal.seq")
        self._call_id = encoder.key_field("gen_ai.tool.call.id")
        #: a `step_started` event's data, by its JSON: a tool's is the same on every call
        self._started_data: dict[bytes, dict[str, Any]] = {}
        #: a policy decision's attributes and event (after its timestamp), by what it said
        self._decisions: dict[tuple[str, str, str | None, str | None], tuple[bytes, bytes]] = {}

    def feed_event(self, e: Event) -> list[Queued]:
        """The spans `e` closed."""
        if self._attempt is not None:
            kind = e.kind
            if kind == v.STEP_STARTED and e.data.__class__ is dict:
                self._started(e.seq, e.key, e.name, e.data, e.ts)
                return []
            if kind == v.STEP_COMPLETED:
                done = self._completed(e.seq, e.key, e.name, e.data, e.ts)
                if done is not None:
                    return [done]
        return self.encoded(self.feed(e))

    def feed_new(self, e: NewEvent) -> list[Queued]:
        """The spans `e`, just committed (its data still JSON), closed."""
        return self.feed_handed((e,), e.seq - 1)[0]

    def feed_handed(self, events: Sequence[NewEvent], after: int) -> tuple[list[Queued], int]:
        """The spans closed by the events the committer handed over (data still JSON) past
        seq `after`, and the last seq fed. One loop for a poll's events, not a call per
        event: this runs for every journaled step."""
        out: list[Queued] = []
        started_data, STARTED, COMPLETED = self._started_data, v.STEP_STARTED, v.STEP_COMPLETED
        for e in events:
            seq = e.seq
            if seq <= after:
                continue
            after = seq
            kind, raw = e.kind, e.data
            if self._attempt is not None:
                if kind == STARTED and raw is not None:
                    data = started_data.get(raw)
                    if data is None:  # read only: a step's span is made from it, never changes
                        data = loads(raw)
                        if data.__class__ is dict:
                            if len(started_data) >= _STARTED_KEPT:
                                started_data.clear()
                            started_data[raw] = data
                    if data.__class__ is dict:
                        self._started(seq, e.key, e.name, data, e.ts)
                        continue
                elif kind == COMPLETED:
                    data = loads(raw)
                    done = self._completed(seq, e.key, e.name, data, e.ts)
                    if done is not None:
                        out.append(done)
                        continue
                else:
                    data = loads(raw)
            else:
                data = loads(raw)
            out += self.encoded(self.feed(journal_event(self.run.id, seq, kind, e.key, e.name,
                                                        data, e.ts)))
        return out, after

    def close_open_encoded(self) -> list[Queued]:
        return self.encoded(self.close_open())

    def encoded(self, spans: list[SpanRecord]) -> list[Queued]:
        span_field, run_id = self.encoder.span_field, self.run.id
        return [(run_id, s.end_seq, span_field(s)) for s in spans]

    # -- the common steps -----------------------------------------------------------------------
    def _started(self, seq: int, key: str | None, name: str | None, data: dict[str, Any],
                 ts: float) -> None:
        # what `SpanBuilder.feed` does with a step_started event while an attempt is open
        assert self._attempt is not None
        self._last_seq, self._last_ts = seq, ts
        self._open[key if key.__class__ is str else str(key)] = (
            seq, ts, name, data, self._attempt.span_id)

    def _completed(self, seq: int, key: str | None, name: str | None, data: Any,
                   ts: float) -> Queued | None:
        """The step's span as bytes, or None when it is not one of the common steps (then
        `SpanBuilder` makes it). Nothing changes before it is known to be common."""
        if self.content:
            return None
        k = key if key.__class__ is str else str(key)
        step = self._open.get(k)
        if step is None:  # a pure step journals only its result: a point in time
            assert self._attempt is not None
            step = (seq, ts, name, _EMPTY, self._attempt.span_id)
        start_seq, start, step_name, started, parent = step
        if step_name != name:
            return None
        meta = started.get("meta")
        if meta.__class__ is not dict:
            meta = _EMPTY
        attempt = started.get("attempt")
        if attempt != 1 and int(attempt or 1) > 1:
            return None
        shape = self._wire_shapes.get((step_name, meta.get("model"), meta.get("side_effect")),
                                      _UNSEEN)
        if shape is _UNSEEN:
            shape = self._wire_shape(step_name, meta)
        if shape is None:
            return None
        named, fixed, family, subject = shape
        decision: tuple[bytes, bytes] | None = None
        if "policy" in meta:  # the guards' decision: attributes, and an event at the start
            decision = self._decision(meta["policy"], started)
            if decision is not None and not decision[0]:
                return None  # not one of the common decisions
        if family == "model":
            attrs = self._model_attrs(data, fixed, subject)
            if attrs is None:
                return None
        elif family == "tool":
            if data.__class__ is not dict or not data.get("ok") or data.get(v.ANSWERED) \
                    or meta.get("rejected"):
                return None
            output = data.get("output")
            if output.__class__ is dict and "exit_code" in output:
                return None
            attrs = [fixed]
            tool = str(data.get("tool") or subject)
            for i, p in enumerate(self._proposals):  # `_proposal_for`, inline
                if p[1] == tool:
                    call_id = self._proposals.pop(i)[0]
                    if call_id:
                        attrs.append(_short_str(self._call_id, call_id)
                                     or self.encoder.attribute("gen_ai.tool.call.id", call_id))
                    break
        else:  # a plain step, a guard's step: ended well
            attrs = [fixed]
        if decision is not None:  # after the step's fixed attributes, before its outcome's
            attrs.insert(1, decision[0])
        self._open.pop(k, None)
        self._last_seq, self._last_ts = seq, ts
        parent_field = self._parent_fields.get(parent)
        if parent_field is None:
            parent_field = self._parent_fields[parent] = b"\x22\x08" + bytes.fromhex(parent)
        digest = self._seq_hash.copy()  # `_seq_span_raw`, inline
        digest.update(b"seq%d" % start_seq)
        span_id = digest.digest()[:8]
        if span_id == _ZERO_ID:
            span_id = self._seq_span_raw(start_seq)
        started_ns = _pack_q(round(start * 1e9))
        body = b"".join((self._trace_field, b"\x12\x08", span_id, parent_field, named, b"\x39",
                         started_ns, b"\x41", _pack_q(round((ts if ts > start else start) * 1e9)),
                         *attrs,
                         _small_int(self._journal_seq, seq)
                         or self.encoder.attribute("tether.journal.seq", seq),
                         b"" if decision is None else _field(b"\x5a", b"".join((
                             b"\x09", started_ns, decision[1]))),
                         _OK))
        n = len(body)  # the ScopeSpans.spans (2) field holding it
        return (self.run.id, seq, b"".join((b"\x12", bytes(((n & 0x7F) | 0x80, n >> 7)), body))
                if 0x80 <= n < 0x4000 else _field(b"\x12", body))

    def _model_attrs(self, data: Any, fixed: bytes, subject: str) -> list[bytes] | None:
        """A model call's attributes after its fixed ones (the run's token and cost totals
        and the proposals for the mind-log kept), or None when it is not a common one."""
        if data.__class__ is not dict or ("response" not in data and "usage" not in data) \
                or data.get("rejected") or data.get("repaired"):
            return None
        usage, response = data.get("usage"), data.get("response")
        if usage.__class__ is not dict:
            usage = _EMPTY
        if response.__class__ is not dict:
            response = _EMPTY
        model = str(data.get("model") or subject)
        answered = self._answered.get(model)
        if answered is None:
            answered = self._answered[model] = self.encoder.attribute(
                "gen_ai.response.model", provider_of(model)[1])
        tokens_in = int(usage.get("input_tokens") or 0)
        tokens_out = int(usage.get("output_tokens") or 0)
        attrs = [fixed, answered,
                 _small_int(self._tokens_in, tokens_in)
                 or self.encoder.attribute("gen_ai.usage.input_tokens", tokens_in),
                 _small_int(self._tokens_out, tokens_out)
                 or self.encoder.attribute("gen_ai.usage.output_tokens", tokens_out)]
        finish = response.get("finish_reason")
        if finish:
            if finish.__class__ is not str:
                finish = str(finish)
            reason = self._finished.get(finish)
            if reason is None:
                reason = self._finished[finish] = self.encoder.attribute(
                    "gen_ai.response.finish_reasons", [finish])
            attrs.append(reason)
        cost = data.get("cost_usd")
        if cost is not None and isinstance(cost, int | float):
            cost = float(cost)
            attrs.append(self.encoder.attribute("tether.cost.usd", cost))
            self._cost = (self._cost or 0.0) + cost
        tokens = self._tokens
        tokens[0] += tokens_in
        tokens[1] += tokens_out
        calls = response.get("tool_calls")
        if calls:
            text = str(response.get("text") or "")
            for c in calls:
                if not isinstance(c, dict):
                    c = _EMPTY
                self._proposals.append((str(c.get("id") or ""), str(c.get("name") or ""),
                                        c.get("arguments"), text))
        return attrs

    def _decision(self, policy: Any, started: dict[str, Any]) -> tuple[bytes, bytes] | None:
        """A policy decision on a step (`v.guard_decision`, `_span_parts.decided`) as the
        span's attributes and its `tether.guard.decision` event after the timestamp; None when
        there is none, (b"", b"") when it is not a common one (a guard answered the step, a rule
        named by something other than a string)."""
        if policy.__class__ is not dict or not policy:
            return None
        short = started.get("short_circuit")
        rule, name = policy.get("rule"), policy.get("policy")
        if (short and short.__class__ is dict and short.get("guard")) \
                or not (rule is None or rule.__class__ is str) \
                or not (name is None or name.__class__ is str):
            return b"", b""
        key = (str(policy.get("action") or ""), str(policy.get("reason") or ""), rule, name)
        made = self._decisions.get(key)
        if made is None:
            reason = key[1]  # quotes the arguments judged: masked once per decision
            attrs: dict[str, AttrValue] = {"tether.guard.action": key[0], "tether.guard.reason":
                                           self._scrub.text(reason) if self._scrub else reason}
            if rule:
                attrs["tether.guard.rule"] = rule
            if name:
                attrs["tether.guard.policy"] = name
            enc = self.encoder
            if len(self._decisions) >= _DECISIONS_KEPT:
                self._decisions.clear()
            made = self._decisions[key] = (
                b"".join(enc.attribute(k, val) for k, val in attrs.items()),
                _field(b"\x12", b"tether.guard.decision")
                + b"".join(_field(b"\x1a", enc.pair(k, val)) for k, val in attrs.items()))
        return made

    def _wire_shape(self, step: str | None, meta: dict[str, Any]) -> _WireShape | None:
        key = (step, meta.get("model"), meta.get("side_effect"))
        try:
            return self._wire_shapes[key]
        except KeyError:
            pass
        name, kind, base, family = self._shape(step, meta)
        shape: _WireShape | None = None
        if family in _FAST:
            attribute = self.encoder.attribute
            shape = (self.encoder.named(name, kind),
                     b"".join(attribute(k, val) for k, val in base.items()), family,
                     v.step_subject(step))
        self._wire_shapes[key] = shape
        return shape


def _int_heads(encoder: SpanEncoder, key: str) -> tuple[bytes, bytes, bytes]:
    """What precedes the value in a `Span.attributes` field of `key` and an int value of 1 and
    of 2 varint bytes (`_small_int`)."""
    field = encoder.key_field(key)
    if len(field) + 5 >= 0x80:
        raise ValueError(f"an attribute key too long for _small_int: {key!r}")

    def head(size: int) -> bytes:  # KeyValue{key, AnyValue{int_value (3)}}
        return b"\x4a" + bytes((len(field) + 3 + size,)) + field + b"\x12" + bytes(
            (1 + size,)) + b"\x18"

    return (b"", head(1), head(2))


def _small_int(heads: tuple[bytes, bytes, bytes], n: int) -> bytes:
    """An int attribute (token counts, journal seqs) as `SpanEncoder.attribute` encodes it,
    without its generic path; b"" when `n` is not in 0..16383 (then ask the encoder)."""
    if 0 <= n < 0x80:
        return heads[1] + bytes((n,))
    if 0 <= n < 0x4000:
        return heads[2] + bytes(((n & 0x7F) | 0x80, n >> 7))
    return b""


def _short_str(key_field: bytes, value: str) -> bytes:
    """A short ASCII string attribute as `SpanEncoder.attribute` encodes it (a tool call's id);
    b"" when it is not that short or not ASCII (then ask the encoder)."""
    n = len(value)
    body = len(key_field) + 4 + n  # KeyValue{key, AnyValue{string_value (1)}}
    if body >= 0x80 or not value.isascii():
        return b""
    return b"".join((b"\x4a", bytes((body,)), key_field, b"\x12", bytes((n + 2,)), b"\x0a",
                     bytes((n,)), value.encode()))


def run_wire_spans(tether: Tether, run_id: str, encoder: SpanEncoder, *,
                   content: bool | None = None) -> list[Queued]:
    """`run_spans` encoded: the spans of a run and its whole tree below, from the journal."""
    out: list[Queued] = []
    for run in tree_runs(tether, run_id):
        spans = WireSpans(run, encoder, content=content)
        for e in tether.store.load_events(run.id):
            out += spans.feed_event(e)
        out += spans.close_open_encoded()
    return out
