"""Issue 14: a dead collector costs ONE warning line — with the exporter the environment names
(`tether run` exporting spans and metrics) and with an exporter the caller passes in. The
collector is a closed port on 127.0.0.1 (connections refused), the exporters the official ones.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tether import Tether
from tether.observe import export_live

from .otel_receiver import closed_port
from .test_otel_export import OTEL_VARS
from .test_spans import GUARDS, thinking_react

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def loud_exporters() -> Iterator[None]:
    """The OTLP exporters' loggers as a fresh process has them (an earlier test in this session
    may have quietened them already, which would hide what this file checks)."""
    logger = logging.getLogger("opentelemetry.exporter.otlp")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


def test_tether_run_prints_exactly_one_line_for_a_dead_collector(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(
        "async def greet(ctx, name: str) -> str:\n"
        "    return await ctx.step('hello', lambda: f'Hello, {name}!')\n")
    env = {**{k: val for k, val in os.environ.items() if k not in OTEL_VARS},
           "TETHER_DB": str(tmp_path / "t.db"),
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    out = subprocess.run(
        [sys.executable, "-m", "tether.cli", "run", "hello.py:greet", "--input", '"Ada"',
         "--quiet"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'result: "Hello, Ada!"' in out.stdout
    # spans and metrics both failed to go out (and the SDK's exit hooks ran): one line in all,
    # saying where the collector was supposed to be
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(("tracing: ", "metrics: ")) and "127.0.0.1" in lines[0], lines


async def test_an_exporter_passed_in_fails_with_one_warning_and_no_retry_lines(
        db_path: str, loud_exporters: None, caplog: pytest.LogCaptureFixture) -> None:
    t = Tether(db_path, guards=GUARDS)
    dead = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{closed_port()}/v1/traces")
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    caplog.set_level(logging.WARNING)
    with export_live(t, dead):
        run = await t.run(thinking_react, "refund A-7")
    assert run.status == "succeeded"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("tracing: ") and "OTLPSpanExporter" in warnings[0], warnings
