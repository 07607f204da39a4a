"""Issue 14: Tether's own OTLP encoding (`_otlp_wire`) makes the very bytes the SDK's encoder
makes of the same spans (content, errors, events, arrays, children, halts, retries and sandbox
execs included), and the export marks stop below spans still waiting to be sent."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.cli import agents_progress
from tether import Tether
from tether.observe import run_spans
from tether.observe._otlp_send import SpanConverter
from tether.observe._otlp_wire import WireEncoder
from tether.observe._trace_marks import marks_after
from tether.observe.spans import SpanEvent, SpanRecord

from .test_spans import GUARDS, _no_gate, typo_react, waits  # noqa: F401 - fixture
from .test_spans_guards import computes


def encoded_both_ways(spans: list[SpanRecord]) -> tuple[bytes, bytes]:
    convert = SpanConverter()
    sdk = encode_spans([convert(s) for s in spans]).SerializeToString()
    return WireEncoder(convert.resource, convert.scope).request(spans), sdk


@pytest.mark.sandbox  # one of the runs executes code in bubblewrap
async def test_real_runs_encode_to_the_sdks_bytes(db_path: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-agents")
    t = Tether(db_path, guards=GUARDS)
    runs = [await t.run(typo_react, "how much did A-7 pay?"),  # a rejected reply: an error
            await t.run(agents_progress.fans_out, 2),  # children
            await t.run(computes, None)]  # a sandbox exec
    halted = t.submit(agents_progress.gated_steps, 3, options={"budget": {"steps": 2}})
    assert (await t.drive(halted)).status == "halted"  # a guard event, an error status
    t.retry(halted, budget={"steps": 10})
    assert (await t.drive(halted)).status == "succeeded"  # a second attempt
    waiting = t.submit(waits, None)
    assert (await t.drive(waiting)).status == "waiting"  # spans still open, marked so
    spans: list[SpanRecord] = []
    for content in (False, True):  # content: long strings, JSON, the mind-log
        for run_id in [*(r.id for r in runs), halted, waiting]:
            spans += run_spans(t, run_id, content=content)
    ours, sdk = encoded_both_ways(spans)
    assert ours == sdk
    kinds = {(s.status, s.kind, bool(s.events), bool(s.parent_id)) for s in spans}
    assert {("error", "client", True, True), ("ok", "internal", False, True),
            ("error", "internal", True, False)} <= kinds  # what the comparison covered


def test_every_attribute_type_encodes_as_the_sdk_does() -> None:
    values: dict[str, Any] = {
        "s": "x", "empty": "", "long": "é" * 300, "t": True, "f": False, "zero": 0,
        "int": 127, "big": 2**40, "negative": -3, "float": 0.25, "nan": float("nan"),
        "list": ["a", "b"], "no_list": [], "one": ["stop"], "long_one": ["é" * 300]}
    span = SpanRecord("n", "ab" * 16, "cd" * 8, None, "r1", 1.5, 2.000000001, 1, 2,
                      status="error", status_message="", attributes=values,
                      events=[SpanEvent("e", 1.75, dict(values)), SpanEvent("bare", 1.8)])
    again = SpanRecord("n2", "ab" * 16, "ef" * 8, "cd" * 8, "r1", 1.5, 1.5, 1, 2**20,
                       status="error", status_message="ü" * 200,
                       attributes={**values, "one": "stop", "t": 1})  # cached keys, other types
    ours, sdk = encoded_both_ways([span, again, span])  # the second span reuses the cache
    assert ours == sdk


def test_ints_and_seqs_at_the_varint_byte_boundaries_encode_as_the_sdk_does() -> None:
    # the encoder's shortcuts for token counts and journal seqs (one, two bytes, then the loop)
    edges = [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**35]
    spans = [SpanRecord("n", "ab" * 16, f"{i + 1:016x}", None, "r1", 1.0, 2.0, 1, seq,
                        attributes={"gen_ai.usage.input_tokens": seq, "k" * 120: seq, "i": -1})
             for i, seq in enumerate(edges)]
    ours, sdk = encoded_both_ways(spans)
    assert ours == sdk


def span(run_id: str, end_seq: int) -> SpanRecord:
    return SpanRecord("s", "ab" * 16, f"{end_seq:016x}", None, run_id, 0.0, 0.0, 1, end_seq)


def queued(run_id: str, end_seq: int) -> tuple[str, int, bytes]:
    return (run_id, end_seq, b"")  # as live export queues a span: run, end seq, the span


def test_marks_stop_below_a_span_of_the_same_event_still_waiting() -> None:
    sent = [queued("a", 3), queued("b", 5), queued("a", 7)]
    waiting = [queued("c", 1), queued("a", 7), queued("b", 9), queued("a", 8)]
    # a: its next waiting span closed at 7 too, so only what 6 covers is certain; b: all of 5
    assert marks_after(sent, waiting) == {"a": 6, "b": 5}
    assert marks_after(sent, []) == {"a": 7, "b": 5}
    assert marks_after([queued("a", 1)], [queued("a", 1)]) == {}  # nothing certain yet


def test_a_batch_is_cut_into_requests_a_collector_takes() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans = [span("a", seq) for seq in range(1, 40)]
    spans[5].attributes["gen_ai.output.messages"] = "x" * 5000  # larger than a request alone
    convert = SpanConverter()
    encoder = WireEncoder(convert.resource, convert.scope)
    requests = encoder.requests(spans, max_bytes=1000)
    decoded = [ExportTraceServiceRequest.FromString(r) for r in requests]
    got = [s.span_id.hex() for d in decoded for s in d.resource_spans[0].scope_spans[0].spans]
    assert got == [s.span_id for s in spans]  # all of them, in order, each once
    assert 1 < len(requests) < len(spans)
    wrapping = len(encoder.request([]))  # the resource and scope every request holds
    assert [i for i, r in enumerate(requests) if len(r) > 1000 + wrapping + 8] == [1]  # 5
    assert encoder.requests(spans, max_bytes=10**6) == [encoder.request(spans)]
