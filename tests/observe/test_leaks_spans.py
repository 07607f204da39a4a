"""No PII or secret reaches a span, content capture off or on: a span goes to a trace backend,
a third party. Found by a leak hunt: the journal keeps what tools really returned and raised and
the policy's reasons quote the real values a granted tool got, and spans copied them out (an
error status quoting a bearer token, with content capture off; a CRM row with a card number,
with it on; a reason `'jane.doe@corp.example' not in [...]` on the fast OTLP path).

A real governed run (leaks_support), its spans read from the journal (`run_spans`), encoded to
OTLP bytes as export sends them (`run_wire_spans`), and exported live to the SDK's in-memory
exporter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tether.observe import SpanRecord, export_live, run_spans
from tether.observe._otlp_wire import SpanEncoder
from tether.observe._wire_spans import run_wire_spans

from . import leaks_support as L


def span_text(s: SpanRecord) -> str:
    return json.dumps([s.name, s.status_message, s.attributes,
                       [(e.name, e.attributes) for e in s.events]], ensure_ascii=False)


@pytest.mark.parametrize("content", [False, True])
async def test_spans_hold_placeholders_not_values(db_path: str, content: bool) -> None:
    t, run = await L.leaky_run(db_path)
    assert L.found(json.dumps([e.data for e in t.events(run.id)]))  # the journal has them
    spans = run_spans(t, run.id, content=content)
    text = "\n".join(span_text(s) for s in spans)
    assert L.found(text) == []
    [charge] = [s for s in spans if s.name == "execute_tool charge"]
    # the error is still told, its secrets replaced
    assert charge.status_message.startswith("401 from payments: Authorization: Bearer [")
    assert "[EMAIL_" in charge.status_message
    [crm] = [s for s in spans if s.name == "execute_tool crm_lookup"]
    assert "not in ['blocked@corp.example']" not in str(crm.attributes["tether.guard.reason"])
    if content:
        result = str(crm.attributes["gen_ai.tool.call.result"])
        assert "[CARD_" in result and "[IBAN_" in result and "[PHONE_" in result
    t.close()


async def test_an_operator_may_ask_for_the_values(db_path: str) -> None:
    t, run = await L.leaky_run(db_path)
    text = "\n".join(span_text(s) for s in run_spans(t, run.id, redact=False))
    assert L.BEARER.split()[1] in text
    t.close()


@pytest.mark.parametrize("content", [False, True])
async def test_otlp_bytes_hold_no_value(db_path: str, content: bool) -> None:
    """What `tether trace --export` and live export send to an OTLP collector: the common steps
    are encoded straight from the journal (`_wire_spans`), their policy reason included."""
    t, run = await L.leaky_run(db_path)
    sent = b"".join(span for _, _, span in run_wire_spans(t, run.id, SpanEncoder(),
                                                          content=content))
    assert b"tether.guard.reason" in sent
    assert [s for s in L.SECRETS if s.encode() in sent] == []
    t.close()


def sdk_text(span: Any) -> str:
    return json.dumps([span.name, span.status.description, dict(span.attributes or {}),
                       [(e.name, dict(e.attributes or {})) for e in span.events]],
                      ensure_ascii=False, default=str)


@pytest.mark.parametrize("content", [False, True])
async def test_live_export_holds_no_value(db_path: str, content: bool) -> None:
    memory = InMemorySpanExporter()
    t = L.leaky_tether(db_path)
    with export_live(t, memory, content=content) as live:
        await L.leaky_run(db_path, t)
        assert live is not None and live.force_flush()
    t.close()
    finished = memory.get_finished_spans()
    assert any(s.name == "execute_tool charge" for s in finished)
    assert L.found("\n".join(sdk_text(s) for s in finished)) == []


async def test_a_failed_step_and_run_export_their_error_masked(db_path: str) -> None:
    t = L.leaky_tether(db_path)
    run = await t.run("tests.observe.leaks_support:crashing", None)
    assert run.status == "failed" and L.API_KEY in str(run.error)
    spans = run_spans(t, run.id)
    [step] = [s for s in spans if s.name == "tether.step fetch_token"]
    [top] = [s for s in spans if s.name.startswith("invoke_agent")]
    assert "answered 403" in step.status_message and "answered 403" in top.status_message
    assert L.found("\n".join(span_text(s) for s in spans)) == []
    t.close()
