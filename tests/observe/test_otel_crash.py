"""Issue 14: a run whose worker is SIGKILLed mid-run and that another worker resumes has one
whole trace at the collector, and no span arrives twice.

Real `tether worker` processes export live to a real OTLP/HTTP receiver (configured by the
standard environment variables). The run's tool call waits for a gate file, so the first worker
is killed while a step is in flight, after its earlier spans reached the collector; the second
worker replays the journal (nothing of it may be sent again) and finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tether import Tether
from tether.observe import run_spans
from tether.store import vocabulary as v

from .otel_receiver import http_receiver

ROOT = Path(__file__).resolve().parents[2]
GUARDS = "tests.cli.agents_progress:GUARDS"


def tether_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_sigkilled_worker_resumed_elsewhere_exports_one_whole_trace(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.db")
    gate = tmp_path / "gate"
    with http_receiver() as (endpoint, received):
        env = {**{k: val for k, val in os.environ.items() if not k.startswith("OTEL_")},
               "TETHER_DB": db, "TETHER_TEST_GATE": str(gate), "PYTHONUNBUFFERED": "1",
               "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt"),
               "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        submit = subprocess.run(
            [sys.executable, "-m", "tether.cli", "run", "tests.cli.agents_progress:gated_react",
             "--input", '"refund A-7"', "--guards", GUARDS, "--detach"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert submit.returncode == 0, submit.stderr
        run_id = submit.stdout.strip()
        t = Tether(db)

        first = tether_cli(env, "worker", "--lease-ttl", "2", "--poll", "0.1")
        try:
            # the first model call reached the collector; the lookup is in flight (gated)
            received.wait_for(lambda s: any(x.name == "chat scripted" for x in s))
            wait_until(lambda: any(e.kind == v.STEP_STARTED and e.name == "tool:lookup"
                                   for e in t.events(run_id)))
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
        before = received.snapshot()
        assert [s.name for s in before] == ["chat scripted"]

        gate.touch()
        second = tether_cli(env, "worker", "--lease-ttl", "2", "--poll", "0.1")
        try:
            wait_until(lambda: t.get(run_id).status == "succeeded")
            received.wait_for(lambda s: any(x.name.startswith("invoke_agent") for x in s))
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=30)
        finally:
            second.kill()
        assert "warning" not in err.lower(), err
        spans = received.snapshot()

    counts = Counter(s.span_id for s in spans)
    assert max(counts.values()) == 1, [s.name for s in spans if counts[s.span_id] > 1]
    # one whole trace: every span the journal implies arrived, in one trace, rooted at the run
    expected = run_spans(t, run_id)
    assert {s.span_id for s in spans} == {x.span_id for x in expected}
    assert {s.trace_id for s in spans} == {expected[0].trace_id}
    [root] = [s for s in spans if s.parent_id is None]
    assert root.name == "invoke_agent gated_react"
    assert all(s.parent_id == root.span_id for s in spans if s is not root)
    # the killed worker's lookup attempt was cut short; the resumed attempt ran it
    lookups = sorted((s for s in spans if s.name == "execute_tool lookup"),
                     key=lambda s: s.start_ns)
    assert [x.attributes.get("tether.step.attempt", 1) for x in lookups] == [1, 2]
    assert lookups[0].attributes["error.type"] == "tether.interrupted"
    assert lookups[1].attributes["tether.guard.action"] == "allow"
