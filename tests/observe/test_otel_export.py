"""Issue 14: spans leave over OTLP (HTTP and gRPC, configured by the standard environment), live
as runs progress and after the fact, identically; a dead collector neither fails nor slows a run.

Collectors are real servers on 127.0.0.1 decoding the official protobufs (`otel_receiver`); the
in-memory exporter is the SDK's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.cli import agents_progress
from tether import Tether
from tether.observe import export_live, export_run, otel, run_spans

from .otel_receiver import closed_port, grpc_receiver, http_receiver
from .test_spans import GUARDS, thinking_react, waits

ROOT = Path(__file__).resolve().parents[2]
OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
             "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED",
             "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TETHER_TEST_GATE", raising=False)
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))


def ids(spans: Any) -> list[tuple[int, int, str, int | None]]:
    return sorted((s.context.trace_id, s.context.span_id, s.name, s.end_time) for s in spans)


async def test_live_export_sends_what_export_after_the_fact_sends(db_path: str) -> None:
    t = Tether(db_path, guards=GUARDS)
    memory = InMemorySpanExporter()
    with export_live(t, memory):
        react = await t.run(thinking_react, "refund A-7")
        fan = await t.run(agents_progress.fans_out, 2)
    live = memory.get_finished_spans()
    counts = Counter(s.context.span_id for s in live)
    assert counts and max(counts.values()) == 1  # nothing twice
    after = InMemorySpanExporter()
    export_run(t, react.id, after)
    export_run(t, fan.id, after)
    assert ids(live) == ids(after.get_finished_spans())
    assert len(live) == 6 + 7


async def test_a_run_resumed_in_the_same_process_exports_each_span_once(db_path: str) -> None:
    t = Tether(db_path)
    memory = InMemorySpanExporter()
    live = export_live(t, memory)
    assert live is not None
    run_id = t.submit(waits, None)
    assert (await t.drive(run_id)).status == "waiting"  # released: a row, no worker
    t.signal(run_id, "go", 1)
    assert (await t.drive(run_id)).status == "succeeded"  # claimed again, replayed
    live.close()
    sent = memory.get_finished_spans()
    assert Counter(s.context.span_id for s in sent).most_common(1)[0][1] == 1
    assert sorted(s.name for s in sent) == sorted(s.name for s in run_spans(t, run_id))


async def test_otlp_http_from_the_standard_environment(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-agents")
        t = Tether(db_path, guards=GUARDS)
        live = export_live(t)
        assert live is not None
        with live:
            run = await t.run(thinking_react, "refund A-7")
            # sent while the process goes on (batched), not only when it closes
            await asyncio.to_thread(received.wait_for, lambda s: any(
                x.name.startswith("invoke_agent") for x in s))
        spans = received.snapshot()
    assert {s.service for s in spans} == {"billing-agents"}
    assert sorted(s.span_id for s in spans) == sorted(x.span_id for x in run_spans(t, run.id))
    [tool] = [s for s in spans if s.name == "execute_tool lookup"]
    assert tool.attributes["gen_ai.tool.call.id"] == "c1"
    lookup = next(x for x in run_spans(t, run.id) if x.name == "execute_tool lookup")
    assert tool.attributes["tether.journal.seq"] == lookup.end_seq  # the journal event behind it


async def test_force_flush_sends_what_has_ended_now_and_keeps_exporting(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch is due only every 2 s (here a minute) or at 2048 spans: force_flush sends a run
    that just ended at once, and live export goes on for the next run."""
    monkeypatch.setattr(otel, "BATCH_DELAY_MS", 60_000)
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        t = Tether(db_path, guards=GUARDS)
        live = export_live(t)
        assert live is not None
        with live:
            first = await t.run(thinking_react, "refund A-7")
            assert live.force_flush(timeout_s=10)
            held = sorted(s.span_id for s in received.snapshot())  # no wait: already there
            assert held == sorted(x.span_id for x in run_spans(t, first.id))
            assert live.exporter.sent == len(held)
            second = await t.run(thinking_react, "refund B-9")
            assert live.force_flush(timeout_s=10)
            assert live.force_flush(timeout_s=0)  # nothing new: no wait
            spans = received.snapshot()
    expected = run_spans(t, first.id) + run_spans(t, second.id)
    assert sorted(s.span_id for s in spans) == sorted(x.span_id for x in expected)
    assert len(spans) == len(expected)  # each span once
    assert live.force_flush()  # closed: nothing left to send


async def test_otlp_grpc_when_the_protocol_says_so(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Tether(db_path, guards=GUARDS)
    run = await t.run(thinking_react, "refund A-7")
    with grpc_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        assert export_run(t, run.id) == 6
        spans = received.wait_for(lambda s: len(s) == 6)
    assert {s.service for s in spans} == {"tether"}  # OTEL_SERVICE_NAME unset: the default
    [agent] = [s for s in spans if s.parent_id is None]
    assert agent.name == "invoke_agent thinking_react"
    assert all(s.parent_id == agent.span_id for s in spans if s is not agent)
    assert [s.attributes["gen_ai.provider.name"] for s in spans if s.name.startswith("chat")] \
        == ["acme"] * 3


def test_nothing_is_exported_or_imported_without_an_endpoint(db_path: str) -> None:
    code = ("import sys; from tether import Tether; from tether.observe import export_live; "
            f"assert export_live(Tether({db_path!r})) is None; "
            "import tether.cli.trace, tether.cli.execute; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_bad_protocol_is_a_clear_error(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.observe import ExportError

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ExportError, match=r"http/json.*'http/protobuf'.*'grpc'"):
        export_live(Tether(db_path))


def test_an_endpoint_without_its_scheme_is_a_clear_error(tmp_path: Path) -> None:
    """`127.0.0.1:4318` was reported as a collector that is down ("is it running?"), and
    `tether run` found out after it had queued the run."""
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    env["PYTHONPATH"] = str(ROOT)
    (tmp_path / "a.py").write_text("async def a(ctx, x):\n    return x\n")
    db = str(tmp_path / "t.db")

    def tether(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tether", *args, "--db", db],
                              cwd=tmp_path, env={**env, **more}, capture_output=True,
                              text=True, timeout=120)

    assert tether("run", "a.py:a", "-i", "1").returncode == 0
    (run,) = Tether(db).runs()
    said = "OTEL_EXPORTER_OTLP_ENDPOINT='127.0.0.1:9' is not an http:// or https:// URL; " \
           "write http://127.0.0.1:9"
    out = tether("trace", run.id, "--export", OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:9")
    assert out.returncode != 0 and said in " ".join(out.stderr.split()), out.stderr
    assert "is it running" not in out.stderr
    out = tether("run", "a.py:a", "-i", "2", OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:9")
    assert out.returncode == 2 and said in " ".join(out.stderr.split()), out.stderr
    assert [r.id for r in Tether(db).runs()] == [run.id]  # nothing queued
    # only the endpoint used is checked: a gRPC base beside the traces' own HTTP endpoint
    out = tether("run", "a.py:a", "-i", "3", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                 OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:9",
                 OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
                 OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:9/v1/traces",
                 OTEL_METRICS_EXPORTER="none")
    assert out.returncode == 0 and "not an http" not in out.stderr, out.stderr


async def test_a_dead_collector_costs_one_warning_and_no_time(
        db_path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    t = Tether(db_path, guards=GUARDS)
    started = time.monotonic()
    await t.run(thinking_react, "warm up")  # imports and first-run costs, not export's
    baseline = time.monotonic() - started
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    live = export_live(t)
    assert live is not None
    runs = [await t.run(thinking_react, f"refund {i}") for i in range(3)]
    ran = time.monotonic() - started
    live.close()
    closed = time.monotonic() - started
    assert all(r.status == "succeeded" for r in runs)
    # three runs with export took no longer than a few single runs without; closing waited at
    # most its bound (the exporter's own retries last 10 s)
    assert ran < max(3 * baseline, 1.0) + 1.0, (ran, baseline)
    assert closed < ran + 3.0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "tracing:" in warnings[0].getMessage() and "127.0.0.1" in warnings[0].getMessage()


def test_tether_run_with_a_dead_collector_succeeds_with_one_warning(tmp_path: Path) -> None:
    env = {**{k: val for k, val in os.environ.items() if k not in OTEL_VARS},
           "TETHER_DB": str(tmp_path / "dead.db"), "TETHER_TEST_LEDGER": str(tmp_path / "l"),
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    env.pop("TETHER_TEST_GATE", None)
    out = subprocess.run(
        [sys.executable, "-m", "tether.cli", "run", "tests.cli.agents_progress:gated_react",
         "--input", '"refund A-7"', "--guards", GUARDS, "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stdout
    # spans and metrics both fail to go out: one warning line says so, not one per signal
    warned = [s for s in out.stderr.splitlines() if s.startswith(("tracing: ", "metrics: "))]
    assert len(warned) == 1, out.stderr
    assert not [s for s in out.stderr.splitlines() if "Traceback" in s or "retrying" in s]


async def many_steps(ctx: Any, n: int) -> int:
    for i in range(n):
        await ctx.step(f"s{i}", lambda: 1)
    return n


async def test_a_long_run_is_sent_in_requests_a_collector_accepts(
        db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.observe import _otlp_send

    t = Tether(db_path)
    run = await t.run(many_steps, 600)
    size = len(_otlp_send.WireSink(_otlp_send.wire_exporter("http/protobuf"))  # type: ignore[arg-type]
               .encoder.request(run_spans(t, run.id)))
    # a collector that takes a third of the run in one request (gRPC receivers: 4 MiB)
    monkeypatch.setattr(_otlp_send, "MAX_REQUEST_BYTES", size // 3)
    with http_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        assert export_run(t, run.id) == 601
        spans = received.wait_for(lambda s: len(s) == 601)
        requests = received.requests
    assert 3 <= requests <= 4  # a third each (and the few spans left over, if any)
    assert len({s.span_id for s in spans}) == 601


def test_tether_run_exports_its_run_live(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    with http_receiver() as (endpoint, received):
        env = {**{k: val for k, val in os.environ.items() if k not in OTEL_VARS},
               "TETHER_DB": db, "TETHER_TEST_LEDGER": str(tmp_path / "l"),
               "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_METRICS_EXPORTER": "none"}
        env.pop("TETHER_TEST_GATE", None)
        out = subprocess.run(
            [sys.executable, "-m", "tether.cli", "run", "tests.cli.agents_progress:fans_out",
             "--input", "2", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120)
        assert out.returncode == 0, out.stderr
        spans = received.snapshot()  # the command waited for its last spans to go out
    t = Tether(db)
    [run] = [r for r in t.runs() if r.parent_id is None]
    assert sorted(s.span_id for s in spans) == sorted(x.span_id for x in run_spans(t, run.id))
    assert out.stderr == ""
