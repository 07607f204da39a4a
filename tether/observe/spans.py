"""A run as spans: the journal read as an OpenTelemetry GenAI trace, without the SDK.

`SpanRecord`s are plain data derived from the journal alone (the only record of what a run did),
so a trace can be drawn (`tether trace`), exported after the fact (`tether trace --export`) or
live as events commit (`tether.observe.otel`), and all three agree. Everything is read through
`tether.store.vocabulary`; names and attributes follow the GenAI semantic conventions pinned in
`SEMCONV_VERSION` (docs/observability.md says which spans and attributes).

Ids are deterministic: the trace id comes from the root run's id, a span id from its run's id and
the journal position that opened it, so the same run exported twice, or resumed in another
process, yields the same ids. Each span remembers the seq of the event that closed it
(`end_seq`): a live exporter that has handled a run's journal up to seq N has already sent every
span with `end_seq <= N`, which is how a resumed run exports nothing twice.

Message content (model replies, tool arguments and results, the model's rationale for a tool
call) is attached only when asked for: the conventions make content opt-in because it may hold
user data, and a span leaves the machine. `content=None` follows the conventions' switch, the
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` environment variable. Either way, PII
and secrets in a span's text are masked (`_span_scrub`; `redact=False` for an operator's view).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tether.store import Event, RunRecord
from tether.store import vocabulary as v

from ._span_parts import (
    Proposal,
    StepShape,
    as_json,
    decided,
    exec_done,
    provider_of,
    run_level,
    short_agent,
    step_shape,
)
from ._span_records import (
    CONTENT_ENV,
    SEMCONV_VERSION,
    AttrValue,
    OpenStep,
    SpanEvent,
    SpanKind,
    SpanRecord,
    SpanStatus,
    capture_content,
    end_span,
    run_span_id,
    span_id_of,
    spawn_span_id,
    trace_id_of,
)
from ._span_scrub import SpanScrub

__all__ = [
    "CONTENT_ENV", "SEMCONV_VERSION", "AttrValue", "SpanBuilder", "SpanEvent", "SpanKind",
    "SpanRecord", "SpanStatus", "capture_content", "run_span_id", "span_id_of", "spawn_span_id",
    "trace_id_of",
]


class SpanBuilder:
    """The spans of one run's journal, one event at a time: `feed` returns the spans that event
    closed, so a followed journal and a whole one yield the same spans. `close_open` ends what
    is still open at the last event (a snapshot of a live run).

    A step's span is made when the step ends, from its two events (`OpenStep` keeps what the
    first said): nothing is built for a step while it runs, and `_wire_spans.WireSpans` can
    encode the common steps straight to OTLP bytes from the same two events."""

    def __init__(self, run: RunRecord, *, content: bool | None = None,
                 redact: bool = True) -> None:
        self.run = run
        self.content = capture_content(content)
        self._scrub = SpanScrub() if redact else None  # PII out of free text (_span_scrub)
        self.trace_id = trace_id_of(run.root_id or run.id)
        self.parent_of_run = (spawn_span_id(run.parent_id, run.id) if run.parent_id else None)
        self._attempt: SpanRecord | None = None
        self._open: dict[str, OpenStep] = {}  # steps started, not ended, by journal key
        self._waits: dict[str, SpanRecord] = {}  # timers and signals, by journal key
        self._spawns: dict[str, SpanRecord] = {}  # by child run id
        self._proposals: list[Proposal] = []
        self._last_seq, self._last_ts = 0, 0.0  # the last event fed (0: none yet)
        self._retry_seq: int | None = None
        self._ended = False
        self._tokens = [0, 0]
        self._cost: float | None = None
        self._shapes: dict[tuple[Any, ...], StepShape] = {}
        # `span_id_of(run.id, f"seq{n}")` for a step or a wait: the run's part hashed once
        self._seq_hash = hashlib.sha256(f"{run.id}\x1f".encode())

    def _seq_span_id(self, seq: int) -> str:
        return self._seq_span_raw(seq).hex()

    def _seq_span_raw(self, seq: int) -> bytes:
        """`span_id_of(run.id, f"seq{seq}")` as bytes, the run's part hashed once."""
        digest = self._seq_hash.copy()
        digest.update(b"seq%d" % seq)
        raw = digest.digest()[:8]
        return raw if any(raw) else bytes.fromhex(span_id_of(self.run.id, f"seq{seq}"))

    # -- the run (one `invoke_agent` span per attempt) ------------------------------------
    def _open_attempt(self, e: Event) -> SpanRecord:
        name = short_agent(self.run.agent)
        self._tokens, self._cost = [0, 0], None  # the attempt's own model calls
        span = SpanRecord(
            name=f"invoke_agent {name}", trace_id=self.trace_id,
            span_id=run_span_id(self.run.id, self._retry_seq), parent_id=self.parent_of_run,
            run_id=self.run.id, start=e.ts, end=e.ts, start_seq=e.seq, end_seq=e.seq,
            attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name,
                "gen_ai.agent.id": self.run.agent, "gen_ai.conversation.id": self.run.root_id
                or self.run.id, "tether.run.id": self.run.id, "tether.tenant": self.run.tenant,
                "tether.run.depth": self.run.depth,
            })
        if self.run.parent_id:
            span.attributes["tether.run.parent_id"] = self.run.parent_id
        if self.run.spec_version:
            span.attributes["gen_ai.agent.version"] = self.run.spec_version
        self._attempt = span
        return span

    def _run_span(self, e: Event) -> SpanRecord:
        if self._attempt is not None:
            return self._attempt
        if self._ended:  # something journaled after the run's end: a span of its own, never
            self._retry_seq = e.seq  # the ended attempt's id again
        return self._open_attempt(e)

    def _close_attempt(self, e: Event, status: str) -> list[SpanRecord]:
        span = self._run_span(e)
        closed = self._close_all(e, "the run ended while it was open")
        span.attributes["tether.run.status"] = status
        span.attributes["gen_ai.usage.input_tokens"] = self._tokens[0]
        span.attributes["gen_ai.usage.output_tokens"] = self._tokens[1]
        if self._cost is not None:
            span.attributes["tether.cost.usd"] = round(self._cost, 8)
        span.status = "ok" if status == "succeeded" else "error"
        end_span(span, e)
        self._attempt = None
        self._ended = True
        return [*closed, span]

    # -- feeding ----------------------------------------------------------------------------
    def feed(self, e: Event) -> list[SpanRecord]:
        """The spans `e` closed (usually none or one), PII masked in their text (`redact`)."""
        spans = self._feed(e)
        return self._scrub.spans(spans) if spans and self._scrub is not None else spans

    def _feed(self, e: Event) -> list[SpanRecord]:
        self._last_seq, self._last_ts = e.seq, e.ts
        kind = e.kind
        if self._attempt is not None:  # most events: the steps of a running attempt
            if kind == v.STEP_STARTED:
                self._step_started(e)
                return []
            if kind == v.STEP_COMPLETED or kind == v.STEP_FAILED:
                return self._step_ended(e)
        if kind == v.RUN_RETRIED:  # a new attempt: its own span, opened before anything else
            self._retry_seq = e.seq
            self._open_attempt(e)
            retry = v.retry_record(e)
            if retry is not None:
                self._attempt_event(e, "tether.run.retried", {
                    "tether.attempt": retry.attempt,
                    "tether.retry.previous_status": retry.previous_status,
                    "tether.retry.replayed_steps": retry.replayed_steps})
            return []
        run = self._run_span(e)
        if kind == v.RUN_SUBMITTED:
            return []
        if kind in (v.RUN_STARTED, v.RUN_RESUMED):
            data = e.data if isinstance(e.data, dict) else {}
            run.events.append(SpanEvent(f"tether.run.{kind.removeprefix('run_')}", e.ts, {
                "tether.worker": str(data.get("worker")), "tether.attempt":
                int(data.get("attempt") or 0)}))
            if kind == v.RUN_RESUMED:  # what was open when the last worker stopped, stopped
                return self._close_steps(e, "interrupted: the worker executing it stopped")
            return []
        if kind in v.RUN_ENDS:
            return self._runend_span(e)
        if kind == v.STEP_STARTED:
            self._step_started(e)
            return []
        if kind in (v.STEP_COMPLETED, v.STEP_FAILED):
            return self._step_ended(e)
        if kind in (v.TIMER_STARTED, v.SIGNAL_WAITING):
            self._wait_started(e)
            return []
        if kind in (v.TIMER_FIRED, v.SIGNAL_RECEIVED):
            return self._close_key(e)
        if kind == v.CHILD_SPAWNED:
            self._spawned(e)
            return []
        if kind == v.CHILD_COMPLETED:
            return self._joined(e)
        run_level(e, run)
        return []

    def close_open(self) -> list[SpanRecord]:
        """End every span still open at the last event fed, marked `tether.open` (a live run
        drawn or exported as it is now)."""
        if not self._last_seq:
            return []
        spans = [*(self._open_span(key, step) for key, step in self._open.items()),
                 *self._waits.values(), *self._spawns.values()]
        if self._attempt is not None:
            spans.append(self._attempt)
        self._open.clear()
        self._waits.clear()
        self._spawns.clear()
        self._attempt = None
        seq, ts = self._last_seq, self._last_ts
        for span in spans:
            span.attributes["tether.open"] = True
            span.end, span.end_seq = max(ts, span.start), seq
        return self._scrub.spans(spans) if self._scrub is not None else spans

    # -- steps --------------------------------------------------------------------------------
    def _step_started(self, e: Event) -> None:
        run_span = self._attempt if self._attempt is not None else self._run_span(e)
        data = e.data if isinstance(e.data, dict) else {}
        self._open[str(e.key)] = (e.seq, e.ts, e.name, data, run_span.span_id)

    def _shape(self, step: str | None, meta: dict[str, Any]) -> StepShape:
        key = (step, meta.get("model"), meta.get("side_effect"))
        shape = self._shapes.get(key)  # the same for every call of one model or tool
        if shape is None:
            shape = self._shapes[key] = step_shape(step, meta)
        return shape

    def _open_span(self, key: str, step: OpenStep) -> SpanRecord:
        """The span of a step that started (at `step`), as it was when it started."""
        seq, ts, name, data, parent = step
        meta = data.get("meta")
        if meta.__class__ is not dict:
            meta = {}
        step_name, span_kind, base, family = self._shape(name, meta)
        attrs = base.copy()
        if family == "tool":
            if meta.get("rejected"):
                attrs["tether.tool.rejected"] = str(meta["rejected"])
        elif family == "exec":
            attrs = {f"tether.sandbox.{k}": str(meta[k]) for k in ("backend", "language")
                     if meta.get(k) is not None}
        elif family == "approval" and meta.get("approval_id"):
            attrs["tether.approval.id"] = str(meta["approval_id"])
        attempt = int(data.get("attempt") or 1)
        if attempt > 1:  # run again after a crash or a retry (each attribute costs export time)
            attrs["tether.step.attempt"] = attempt
        span = SpanRecord(step_name, self.trace_id, self._seq_span_id(seq), parent, self.run.id,
                          ts, ts, seq, seq, span_kind, attributes=attrs)
        if "policy" in meta and (decision := v.guard_decision(
                Event(self.run.id, seq, v.STEP_STARTED, key, name, data, ts))) is not None:
            decided(span, ts, decision)
        return span

    def _step_ended(self, e: Event) -> list[SpanRecord]:
        key = str(e.key)
        step = self._open.pop(key, None)
        if step is None:  # a pure step journals only its result: a point in time
            step = (e.seq, e.ts, e.name, {}, self._run_span(e).span_id)
        span = self._open_span(key, step)
        data = e.data if isinstance(e.data, dict) else {}
        family = v.step_family(e.name)
        if e.kind == v.STEP_FAILED:
            span.status, span.status_message = "error", str(data.get("message") or "")
            span.attributes["error.type"] = str(data.get("type") or "error")
            span.events.append(SpanEvent("exception", e.ts, {
                "exception.type": str(data.get("type") or "error"),
                "exception.message": str(data.get("message") or "")}))
        elif family == "model" and (call := v.model_call(e)) is not None:
            self._model_done(span, call)
        elif family == "exec" and (res := v.exec_result(e)) is not None:
            exec_done(span, res)
        elif family == "tool" and (tool := v.tool_call(e)) is not None:
            self._tool_done(span, tool, v.exec_result(e))
        else:
            span.status = "ok"
        span.end = e.ts if e.ts > span.start else span.start  # `end_span`, on every step
        span.end_seq = e.seq
        return [span]

    def _model_done(self, span: SpanRecord, call: v.ModelCallRecord) -> None:
        _, answered = provider_of(call.model)
        a = span.attributes
        a["gen_ai.response.model"] = answered
        a["gen_ai.usage.input_tokens"] = call.input_tokens
        a["gen_ai.usage.output_tokens"] = call.output_tokens
        if call.finish_reason:
            a["gen_ai.response.finish_reasons"] = [str(call.finish_reason)]
        if call.cost_usd is not None:
            a["tether.cost.usd"] = call.cost_usd
            self._cost = (self._cost or 0.0) + call.cost_usd
        self._tokens[0] += call.input_tokens
        self._tokens[1] += call.output_tokens
        if call.repaired:
            a["tether.model.repaired"] = True
        if call.rejected:  # validation sent it back: the next chat span is the model's retry
            a["tether.model.rejected"] = list(call.rejected)
            span.status, span.status_message = "error", "reply rejected: " + "; ".join(
                call.rejected)
            a["error.type"] = "tether.reply_rejected"
            span.events.append(SpanEvent("tether.model.rejected", span.end, {
                "tether.reasons": list(call.rejected)}))
        else:
            span.status = "ok"
        if self.content:
            a["gen_ai.output.messages"] = as_json([{
                "role": "assistant", "finish_reason": call.finish_reason or "stop",
                "parts": [*([{"type": "text", "content": call.text}] if call.text else []),
                          *({"type": "tool_call", "id": c.get("id"), "name": c.get("name"),
                             "arguments": c.get("arguments")} for c in call.tool_calls)]}])
        if not call.rejected:
            self._proposals += [
                (str(c.get("id") or ""), str(c.get("name") or ""), c.get("arguments"), call.text)
                for c in call.tool_calls]

    def _tool_done(self, span: SpanRecord, tool: v.ToolCallRecord,
                   sandbox: dict[str, Any] | None) -> None:
        a = span.attributes
        proposal = self._proposal_for(tool.tool)
        if proposal is not None:
            call_id, _, arguments, thought = proposal
            if call_id:
                a["gen_ai.tool.call.id"] = call_id
            if self.content:
                a["gen_ai.tool.call.arguments"] = as_json(arguments)
                if thought.strip():
                    a["tether.tool.rationale"] = thought  # the mind-log
        if tool.answered_by:
            a["tether.guard.answered_by"] = tool.answered_by
        if self.content:
            a["gen_ai.tool.call.result"] = as_json(tool.output if tool.ok else {
                "error": tool.error_type, "message": tool.error_message})
        if sandbox is not None:
            exec_done(span, sandbox)
        if tool.ok:
            span.status = "ok"
        else:
            span.status, span.status_message = "error", tool.error_message
            a["error.type"] = str(tool.error_type or "error")

    def _proposal_for(self, tool: str) -> Proposal | None:
        for i, p in enumerate(self._proposals):
            if p[1] == tool:
                return self._proposals.pop(i)
        return None

    def _close_steps(self, e: Event, why: str) -> list[SpanRecord]:
        closed = []
        for key, step in self._open.items():  # a wait (in `_waits`) outlives its worker
            span = self._open_span(key, step)
            span.status, span.status_message = "error", why
            span.attributes["error.type"] = "tether.interrupted"
            end_span(span, e)
            closed.append(span)
        self._open.clear()
        return closed

    def _close_all(self, e: Event, why: str) -> list[SpanRecord]:
        closed = self._close_steps(e, why)
        for span in [*self._waits.values(), *self._spawns.values()]:
            span.attributes["tether.unfinished"] = why
            end_span(span, e)
            closed.append(span)
        self._waits.clear()
        self._spawns.clear()
        return closed

    # -- waits and children -------------------------------------------------------------------
    def _wait_started(self, e: Event) -> None:
        data = e.data if isinstance(e.data, dict) else {}
        attrs: dict[str, AttrValue] = {}
        if e.kind == v.TIMER_STARTED:
            name = "tether.timer"
            attrs["tether.timer.seconds"] = float(data.get("seconds") or 0)
        elif (e.name or "").startswith(v.APPROVAL_SIGNAL):
            approval = (e.name or "")[len(v.APPROVAL_SIGNAL):]
            name = f"tether.approval.wait {approval}"
            attrs["tether.approval.id"] = approval
        else:
            name = f"tether.wait {e.name}"
            attrs["tether.signal"] = str(e.name)
        self._waits[str(e.key)] = SpanRecord(
            name=name, trace_id=self.trace_id, span_id=self._seq_span_id(e.seq),
            parent_id=self._run_span(e).span_id, run_id=self.run.id, start=e.ts, end=e.ts,
            start_seq=e.seq, end_seq=e.seq, attributes=attrs)

    def _close_key(self, e: Event) -> list[SpanRecord]:
        span = self._waits.pop(str(e.key), None)
        if span is None:
            return []
        data = e.data if isinstance(e.data, dict) else {}
        if data.get("timed_out"):
            span.attributes["tether.timed_out"] = True
        span.status = "ok"
        end_span(span, e)
        return [span]

    def _spawned(self, e: Event) -> None:
        data = e.data if isinstance(e.data, dict) else {}
        child = str(data.get("child_id") or "")
        agent = str(e.name or "")
        self._spawns[child] = SpanRecord(
            name=f"tether.spawn {short_agent(agent)}", trace_id=self.trace_id,
            span_id=spawn_span_id(self.run.id, child), parent_id=self._run_span(e).span_id,
            run_id=self.run.id, start=e.ts, end=e.ts, start_seq=e.seq, end_seq=e.seq,
            attributes={"tether.child.run_id": child, "tether.child.agent": agent})

    def _joined(self, e: Event) -> list[SpanRecord]:
        span = self._spawns.pop(str(e.name), None)
        if span is None:
            return []
        data = e.data if isinstance(e.data, dict) else {}
        status = str(data.get("status") or "")
        span.attributes["tether.child.status"] = status
        span.status = "ok" if status == "succeeded" else "error"
        if data.get("error"):
            span.status_message = str(data["error"])
        end_span(span, e)
        return [span]

    def _attempt_event(self, e: Event, name: str, attrs: dict[str, AttrValue]) -> None:
        self._run_span(e).events.append(SpanEvent(name, e.ts, attrs))

    def _runend_span(self, e: Event) -> list[SpanRecord]:
        status = {v.RUN_COMPLETED: "succeeded", v.RUN_FAILED: "failed",
                  v.RUN_HALTED: "halted", v.RUN_CANCELLED: "cancelled"}[e.kind]
        run = self._run_span(e)
        data = e.data if isinstance(e.data, dict) else {}
        if (halt := v.halt_record(e)) is not None:
            run.events.append(SpanEvent("tether.guard.halt", e.ts, {
                "tether.guard": halt.guard or "other", "tether.guard.reason": halt.reason}))
            run.status_message = halt.reason
            run.attributes["error.type"] = f"tether.halted.{halt.guard or 'other'}"
        elif e.kind == v.RUN_FAILED:
            run.status_message = f"{data.get('type')}: {data.get('message')}"
            run.attributes["error.type"] = str(data.get("type") or "error")
        elif e.kind == v.RUN_CANCELLED:
            run.status_message = str(data.get("reason") or "cancelled")
            run.attributes["error.type"] = "tether.cancelled"
        return self._close_attempt(e, status)
