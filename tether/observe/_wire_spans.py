"""A run's spans as OTLP bytes straight from its journal's events: what live export and
`export_run` hand the official OTLP exporters.

Why: tracing's budget is per durable step, and the cheapest steps (a scripted model, an
in-process tool: ~0.4 ms of CPU) leave it ~20 µs for 5%. Building each step's `SpanRecord` (a
dataclass, its attribute dict, the parsed call records) and encoding that took ~17-28 µs a step.
So the common steps (a model call, a tool call or a plain step that ended well, at its first
attempt, allowed or not judged by the policy, with no content captured) are encoded here from
their `step_started` and `step_completed` events into one `Span` message at once: the step's
name, kind and fixed attributes are bytes made once per model or tool, the trace id once per
run, the parent's once per attempt, a policy decision's once per rule, and what a step's
`step_started` data says of its span is read once per distinct data (`_plan`), not per call.
A poll's events are fed in one loop (`drain`). Every other span (the
run's, waits, children, failed steps, steps a guard answered, content) is built by
`SpanBuilder` and encoded by `SpanEncoder`, and the state the two share (a step's start, the
run's token totals, the model's proposals for the mind-log) is the builder's own.
tests/observe/test_wire_spans.py holds the bytes equal to `SpanBuilder`'s spans encoded on real
runs, so the two ways cannot drift apart.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tether.store import Event, NewEvent, RunRecord, loads
from tether.store import vocabulary as v

from ._otlp_wire import _FLAGS, SEQS_KEPT, SPAN_HEADS, SpanEncoder, _field, small_int
from ._run_spans import tree_runs
from ._span_parts import provider_of
from ._trace_marks import Queued
from .spans import AttrValue, SpanBuilder, SpanRecord

if TYPE_CHECKING:
    from tether.runtime import Tether

_pack_q = struct.Struct("<Q").pack
#: a span's start (7) and end (8) times: one call, not two packs and two tags
_pack_times = struct.Struct("<BQBQ").pack
_OK = b"\x7a\x02\x18\x01" + _FLAGS  # Span.status (15) OK, then the flags
_EMPTY: dict[str, Any] = {}  # read only
_ZERO_ID = bytes(8)  # an invalid span id (`_seq_span_raw` makes another)
_FAST = frozenset({"model", "tool", "step", "guard"})  # the families encoded here
_STARTED_KEPT = 64  # `step_started` data remembered by its JSON (its request hash cut out)
_DECISIONS_KEPT = 256
_PLANS_KEPT = 256
#: in a model step's `step_started` meta: the request's digest (64 hex digits), new every call
#: and read by nothing here, so cut from the JSON that `_started_json` remembers data by
_HASH_KEY = b',"request_hash":"'
_HASH_END = len(_HASH_KEY) + 64  # its closing quote
_ANSWERED = v.ANSWERED
_new_event = object.__new__
_set_run, _set_seq, _set_kind, _set_key, _set_name, _set_data, _set_ts = (
    Event.__dict__[name].__set__ for name in ("run_id", "seq", "kind", "key", "name", "data",
                                              "ts"))

#: a step's span name and kind, its fixed attributes (each as a `Span.attributes` field), its
#: family and the model or tool it called
_WireShape = tuple[bytes, bytes, str, str]
#: what a step's `step_started` data and name say of its span (`_plan`): the data and name it
#: was worked out for, the meta, the shape (None: not a common step) and the policy's decision
_Plan = tuple[dict[str, Any], str | None, dict[str, Any], _WireShape | None,
              tuple[bytes, bytes] | None]


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
    (`feed_event`) or the committer's (`drain`, `feed_handed`: not decoded yet)."""

    def __init__(self, run: RunRecord, encoder: SpanEncoder, *,
                 content: bool | None = None) -> None:
        super().__init__(run, content=content)
        self.encoder = encoder
        # a span's trace id (1) and the tag of its span id (2), the same on every span
        self._trace_head = b"\x0a\x10" + bytes.fromhex(self.trace_id) + b"\x12\x08"
        self._parent_fields: dict[str, bytes] = {}  # by the attempt's span id
        self._wire_shapes: dict[tuple[Any, ...], _WireShape | None] = {}
        self._answered: dict[str, bytes] = {}  # `gen_ai.response.model`, by the model's name
        self._finished: dict[str, bytes] = {}  # `gen_ai.response.finish_reasons`, by reason
        self._tokens_in = encoder.int_heads("gen_ai.usage.input_tokens")
        self._tokens_out = encoder.int_heads("gen_ai.usage.output_tokens")
        self._seq_attrs = encoder.seq_attributes
        self._call_ids = encoder.str_heads("gen_ai.tool.call.id")
        #: a `step_started` event's data, by its JSON (`_started_json`): a tool's is the same
        #: on every call, a model's once its request hash is cut out
        self._started_data: dict[bytes, Any] = {}
        #: what a step's `step_started` data says of its span, by the data's id (`_plan`)
        self._plans: dict[int, _Plan] = {}
        #: a policy decision's attributes and event (after its timestamp), by what it said
        self._decisions: dict[tuple[str, str, str | None, str | None], tuple[bytes, bytes]] = {}

    def feed_event(self, e: Event) -> list[Queued]:
        """The spans `e` closed."""
        if self._attempt is not None:
            kind = e.kind
            if kind == v.STEP_STARTED and e.data.__class__ is dict:
                self._last_seq, self._last_ts = e.seq, e.ts
                self._open[e.key if e.key.__class__ is str else str(e.key)] = (
                    e.seq, e.ts, e.name, e.data, self._attempt.span_id)
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
        seq `after`, and the last seq fed."""
        spans, after, _ = self.drain(collections.deque((events,)), after)
        return spans, after

    def drain(self, handed: collections.deque[Sequence[NewEvent]],
              after: int) -> tuple[list[Queued], int, str | None]:
        """The spans closed by the batches of events the committer handed over (data still
        JSON), taken from the left of `handed` past seq `after`, and the last seq fed and its
        event's kind. Stops before a later batch that does not follow on (events written
        elsewhere: the journal has them). One loop for a whole poll, not a call per batch or
        per event: this runs for every journaled step."""
        out: list[Queued] = []
        started_data, open_steps = self._started_data, self._open
        STARTED, COMPLETED = v.STEP_STARTED, v.STEP_COMPLETED
        last: NewEvent | None = None  # the last event fed
        while handed:
            for e in handed.popleft():
                seq = e.seq
                if seq <= after:
                    continue
                after, last = seq, e
                kind, raw = e.kind, e.data
                attempt = self._attempt
                if attempt is not None:
                    if kind == STARTED and raw is not None:
                        data = started_data.get(raw)
                        if data is None:  # read only: a step's span is made from it
                            data = self._started_json(raw)
                        if data.__class__ is dict:  # `SpanBuilder._step_started`
                            key = e.key
                            open_steps[key if key.__class__ is str else str(key)] = (
                                seq, e.ts, e.name, data, attempt.span_id)
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
                out += self.encoded(self.feed(journal_event(
                    self.run.id, seq, kind, e.key, e.name, data, e.ts)))
            if handed and handed[0] and handed[0][0].seq > after + 1:
                break
        if last is None:
            return out, after, None
        self._last_seq, self._last_ts = last.seq, last.ts  # as `SpanBuilder.feed` leaves them
        return out, after, last.kind

    def _started_json(self, raw: bytes) -> Any:
        """A `step_started` event's data not remembered by its JSON yet. A model's differs
        from call to call by its request hash alone, which no span carries: remembered without
        it, a model's is decoded once, not at every call (~0.8 µs)."""
        key = raw
        at = raw.find(_HASH_KEY)
        if at > 0 and raw[at + _HASH_END:at + _HASH_END + 1] == b'"' \
                and raw[at + len(_HASH_KEY):at + _HASH_END].isalnum():
            key = raw[:at] + raw[at + _HASH_END + 1:]
            data = self._started_data.get(key)
            if data is not None:
                return data
        data = loads(key)
        if data.__class__ is dict:
            if len(self._started_data) >= _STARTED_KEPT:
                self._started_data.clear()
            self._started_data[key] = data
        return data

    def close_open_encoded(self) -> list[Queued]:
        return self.encoded(self.close_open())

    def encoded(self, spans: list[SpanRecord]) -> list[Queued]:
        span_field, run_id = self.encoder.span_field, self.run.id
        return [(run_id, s.end_seq, span_field(s)) for s in spans]

    # -- the common steps -----------------------------------------------------------------------
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
        plan = self._plans.get(id(started))
        if plan is None or plan[0] is not started or plan[1] != step_name:
            plan = self._plan(started, step_name)
        shape = plan[3]
        if shape is None:
            return None
        named, fixed, family, subject = shape
        # the Span's fields in order; its span id (1), parent (2) and times (4) filled below
        parts = [self._trace_head, b"", b"", named, b"", fixed]
        if family == "model":
            if not self._model_attrs(data, subject, parts):
                return None
        elif family == "tool":
            if data.__class__ is not dict or not data.get("ok") or data.get(_ANSWERED):
                return None
            output = data.get("output")
            if output.__class__ is dict and "exit_code" in output:
                return None
            tool = data.get("tool") or subject
            if tool.__class__ is not str:
                tool = str(tool)
            for i, p in enumerate(self._proposals):  # `_proposal_for`, inline
                if p[1] == tool:
                    call_id = self._proposals.pop(i)[0]
                    if call_id:
                        heads = self._call_ids
                        parts.append(heads[len(call_id)] + call_id.encode()
                                     if len(call_id) < len(heads) and call_id.isascii()
                                     else self.encoder.attribute("gen_ai.tool.call.id",
                                                                 call_id))
                    break
        decision = plan[4]
        if decision is not None:  # after the step's fixed attributes, before its outcome's
            parts.insert(6, decision[0])
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
        started_ns = round(start * 1e9)
        parts[1], parts[2], parts[4] = span_id, parent_field, _pack_times(
            0x39, started_ns, 0x41, round((ts if ts > start else start) * 1e9))
        parts.append((self._seq_attrs[seq] if seq < SEQS_KEPT else None)
                     or self.encoder.seq_attribute(seq))
        if decision is not None:
            parts.append(_field(b"\x5a", b"".join((b"\x09", _pack_q(started_ns),
                                                   decision[1]))))
        parts.append(_OK)
        body = b"".join(parts)
        n = len(body)  # the ScopeSpans.spans (2) field holding it
        return self.run.id, seq, (SPAN_HEADS[n] + body if n < len(SPAN_HEADS)
                                  else _field(b"\x12", body))

    def _plan(self, started: dict[str, Any], step_name: str | None) -> _Plan:
        """What a step's `step_started` data says of its span: its shape, None when the step
        is not a common one (a retried attempt, a rejected tool call, a decision the guards
        answered); remembered by the data's id, as the data itself is (`_started_json`), so
        a tool's call or a model's looks it up instead of reading the meta again."""
        meta = started.get("meta")
        if meta.__class__ is not dict:
            meta = _EMPTY
        attempt = started.get("attempt")
        shape: _WireShape | None = None
        decision: tuple[bytes, bytes] | None = None
        if attempt == 1 or int(attempt or 1) <= 1:
            shape = self._wire_shape(step_name, meta)
        if shape is not None and shape[2] == "tool" and meta.get("rejected"):
            shape = None
        if shape is not None and "policy" in meta:  # the guards' decision: attributes, and
            decision = self._decision(meta["policy"], started)  # an event at the start
            if decision is not None and not decision[0]:
                shape = None  # not one of the common decisions
        plan = (started, step_name, meta, shape, decision)
        if len(self._plans) >= _PLANS_KEPT:
            self._plans.clear()
        self._plans[id(started)] = plan  # it holds `started`: the id is not reused meanwhile
        return plan

    def _model_attrs(self, data: Any, subject: str, parts: list[bytes]) -> bool:
        """A model call's attributes after its fixed ones, onto `parts` (the run's token and
        cost totals and the proposals for the mind-log kept); False, with nothing changed,
        when it is not a common one."""
        if data.__class__ is not dict or ("response" not in data and "usage" not in data) \
                or data.get("rejected") or data.get("repaired"):
            return False
        usage, response = data.get("usage"), data.get("response")
        if usage.__class__ is not dict:
            usage = _EMPTY
        if response.__class__ is not dict:
            response = _EMPTY
        model = data.get("model") or subject
        if model.__class__ is not str:
            model = str(model)
        answered = self._answered.get(model)
        if answered is None:
            answered = self._answered[model] = self.encoder.attribute(
                "gen_ai.response.model", provider_of(model)[1])
        parts.append(answered)
        tokens_in = usage.get("input_tokens") or 0
        if tokens_in.__class__ is not int:
            tokens_in = int(tokens_in)
        tokens_out = usage.get("output_tokens") or 0
        if tokens_out.__class__ is not int:
            tokens_out = int(tokens_out)
        small = self._tokens_in[3]  # a small count's attribute made once
        parts.append(small[tokens_in] if 0 <= tokens_in < len(small)
                     else small_int(self._tokens_in, tokens_in)
                     or self.encoder.attribute("gen_ai.usage.input_tokens", tokens_in))
        small = self._tokens_out[3]
        parts.append(small[tokens_out] if 0 <= tokens_out < len(small)
                     else small_int(self._tokens_out, tokens_out)
                     or self.encoder.attribute("gen_ai.usage.output_tokens", tokens_out))
        finish = response.get("finish_reason")
        if finish:
            if finish.__class__ is not str:
                finish = str(finish)
            reason = self._finished.get(finish)
            if reason is None:
                reason = self._finished[finish] = self.encoder.attribute(
                    "gen_ai.response.finish_reasons", [finish])
            parts.append(reason)
        cost = data.get("cost_usd")
        if cost is not None and isinstance(cost, int | float):
            cost = float(cost)
            parts.append(self.encoder.attribute("tether.cost.usd", cost))
            self._cost = (self._cost or 0.0) + cost
        tokens = self._tokens
        tokens[0] += tokens_in
        tokens[1] += tokens_out
        calls = response.get("tool_calls")
        if calls:
            text = response.get("text") or ""
            if text.__class__ is not str:
                text = str(text)
            for c in calls:
                if c.__class__ is not dict:
                    c = c if isinstance(c, dict) else _EMPTY
                call_id, tool = c.get("id") or "", c.get("name") or ""
                self._proposals.append((
                    call_id if call_id.__class__ is str else str(call_id),
                    tool if tool.__class__ is str else str(tool), c.get("arguments"), text))
        return True

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
