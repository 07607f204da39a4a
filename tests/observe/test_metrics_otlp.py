"""Metrics over OTLP as the environment configures them: real HTTP and gRPC receivers on
127.0.0.1 decode what the official exporters send; a dead collector costs one warning; with
nothing configured, nothing is exported and the SDK is not imported."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tether import Tether
from tether.models import ScriptedModel
from tether.observe import export_metrics_live
from tether.observe.otel import otlp_destination

from . import otel_receiver
from . import test_kpis_support as S
from .otel_receiver import Received

ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
       "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
       "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED",
       "OTEL_METRICS_EXPORTER")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, Received]]:
    with otel_receiver.http_receiver() as got:
        yield got


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    with otel_receiver.grpc_receiver() as got:
        yield got


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_runs_export_their_metrics_over_otlp(
        protocol: str, db_path: str, monkeypatch: pytest.MonkeyPatch,
        http_receiver: tuple[str, Received], grpc_receiver: tuple[str, Received]) -> None:
    endpoint, received = http_receiver if protocol == "http/protobuf" else grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=agents")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-agents")
    assert otlp_destination("metrics").startswith(endpoint)
    t = Tether(db_path, guards=S.GUARDS_REF)
    live = export_metrics_live(t)  # from the environment
    assert live is not None
    try:
        S.SETUP["answer"] = ScriptedModel(S.ANSWER_SCRIPT, name=S.MODEL)
        await t.run(S.answer, "What is six times seven?", tenant="acme")
    finally:
        live.close()  # flushes: a short-lived `tether run` sends before it exits
        t.close()
    assert received.metrics_got.wait(10), "nothing reached the receiver"
    metrics = received.metrics()
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration",
            "tether.task.runs", "tether.task.tokens"} <= set(metrics)
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    sums = {next(a.value.string_value for a in p.attributes if a.key == "gen_ai.token.type"):
            (p.count, p.sum) for p in usage.histogram.data_points}
    assert sums == {"input": (1, 500), "output": (1, 5)}  # the one run this client ended
    assert received.metric_resource_values("service.name") == {"shop-agents"}
    assert all(h.get("x-team") == "agents" for h in received.metric_headers)


async def test_a_dead_collector_costs_one_warning_and_never_the_run(
        db_path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{port}/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1")
    caplog.set_level(logging.WARNING, logger="tether.observe")
    t = Tether(db_path, guards=S.GUARDS_REF)
    live = export_metrics_live(t)
    assert live is not None
    started = time.monotonic()
    try:
        for _ in range(2):
            S.SETUP["answer"] = ScriptedModel(S.ANSWER_SCRIPT, name=S.MODEL)
            run = await t.run(S.answer, "What is six times seven?")
            assert run.status == "succeeded"
    finally:
        live.close()
        t.close()
    assert time.monotonic() - started < 10  # close waits at most CLOSE_TIMEOUT_S
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not caplog.records:
        time.sleep(0.1)
    warnings = [r.getMessage() for r in caplog.records if "metrics:" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}" in warnings[0]


def test_nothing_configured_exports_nothing_and_imports_no_sdk(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "from tether import Tether\n"
        "from tether.observe._kpi_live import export_metrics_live\n"
        f"t = Tether({str(tmp_path / 'x.db')!r})\n"
        "assert export_metrics_live(t) is None\n"
        "t.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_tether_run_exports_its_metrics(tmp_path: Any,
                                        http_receiver: tuple[str, Received]) -> None:
    """The command line: `tether run` with the OTEL_* environment sends the run's metrics
    before it exits (spans go to the same collector; tests/observe/test_otel* cover them)."""
    from tests.cli.cli_support import tether

    endpoint, received = http_receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "cli-agents"}
    tether("run", "tests.observe.test_kpis_support:answer_once", "--input", '"six times seven?"',
           "--quiet", db=tmp_path / "cli.db", env=env)
    assert received.metrics_got.wait(10), "tether run sent no metrics"
    usage = received.metrics()["gen_ai.client.token.usage"]
    assert sorted((p.count, p.sum) for p in usage.histogram.data_points) == [(1, 5), (1, 500)]
    assert received.metric_resource_values("service.name") == {"cli-agents"}
    # the process's own instance id: cumulative sums of several workers do not collide
    from opentelemetry.sdk.resources import Resource

    (instance,) = received.metric_resource_values("service.instance.id")
    assert instance and instance != Resource.create({}).attributes.get("service.instance.id")


@pytest.mark.slow
def test_a_sigkilled_worker_resumed_elsewhere_counts_each_call_once(
        tmp_path: Any, http_receiver: tuple[str, Received]) -> None:
    """Real `tether worker` processes with the OTEL_* environment: the first is SIGKILLed while
    the run's tool call is in flight (one model call done), the second replays the journal and
    finishes. Every model call of the journal is counted once, the replayed one included."""
    import signal

    from tests.cli.cli_support import ROOT
    from tether.store import vocabulary as v

    endpoint, received = http_receiver
    db, gate = str(tmp_path / "crash.db"), tmp_path / "gate"
    env = {**{k: val for k, val in os.environ.items() if not k.startswith("OTEL_")},
           "TETHER_DB": db, "TETHER_TEST_GATE": str(gate), "PYTHONPATH": str(ROOT),
           "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "300"}

    def cli(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tether", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    submit = cli("run", "tests.cli.agents_progress:gated_react", "--input", '"refund A-7"',
                 "--guards", "tests.cli.agents_progress:GUARDS", "--detach")
    run_id = submit.communicate(timeout=60)[0].strip()
    t = Tether(db)
    try:
        first = cli("worker", "--lease-ttl", "2", "--poll", "0.1")
        try:
            _wait(lambda: any(e.kind == v.STEP_STARTED and e.name == "tool:lookup"
                              for e in t.events(run_id)))
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
        gate.touch()
        second = cli("worker", "--lease-ttl", "2", "--poll", "0.1")
        try:
            _wait(lambda: t.get(run_id).status == "succeeded")
            _wait(lambda: "tether.task.runs" in received.metrics())
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=30)
        finally:
            second.kill()
        events = t.events(run_id)
    finally:
        t.close()
    calls = [c for c in map(v.model_call, events) if c is not None]
    assert len(calls) == 3 and any(e.kind == v.RUN_RESUMED for e in events)
    metrics = received.metrics()
    (usage,) = [p for p in metrics["gen_ai.client.token.usage"].histogram.data_points
                if _attr(p, "gen_ai.token.type") == "input"]
    assert (usage.count, usage.sum) == (3, sum(c.input_tokens for c in calls))
    outcomes = {(_attr(p, "gen_ai.tool.name"), _attr(p, "tether.tool.outcome")): p.as_int
                for p in metrics["tether.tool.calls"].sum.data_points}
    # the killed worker's lookup was cut short and ran again: one call, not two
    assert outcomes == {("lookup", "ok"): 1, ("delete_all", "refused"): 1}


def _attr(point: Any, key: str) -> Any:
    return next(a.value.string_value for a in point.attributes if a.key == key)


def _wait(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")
