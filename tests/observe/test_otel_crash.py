"""Issue 14: a run whose worker is SIGKILLed mid-run and that another worker resumes has one
whole trace at the collector, and no span arrives twice.

Real `tether worker` processes export live to a real OTLP/HTTP receiver (configured by the
standard environment variables). The run's tool call waits for a gate file, so the first worker
is killed while a step is in flight; the second worker replays the journal and finishes. What
the first worker had sent must not come again (the second starts from the run's export mark);
what it could not send (its collector was down) must come from the second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tether import Tether
from tether.observe import run_spans
from tether.store import vocabulary as v

from .otel_receiver import Received, ReceivedSpan, closed_port, http_receiver

ROOT = Path(__file__).resolve().parents[2]
GUARDS = "tests.cli.agents_progress:GUARDS"


def tether_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def crash_and_resume(tmp_path: Path, received: Received, first_endpoint: str,
                     second_endpoint: str, *, first_sends: bool) -> tuple[Tether, str]:
    """Submit the gated run; worker 1 (exporting to `first_endpoint`) runs it into its gated
    tool call and is SIGKILLed; worker 2 (exporting to `second_endpoint`) finishes it."""
    db = str(tmp_path / "crash.db")
    gate = tmp_path / "gate"
    env = {**{k: val for k, val in os.environ.items() if not k.startswith("OTEL_")},
           "TETHER_DB": db, "TETHER_TEST_GATE": str(gate), "PYTHONUNBUFFERED": "1",
           "TETHER_TEST_LEDGER": str(tmp_path / "ledger.txt"), "OTEL_METRICS_EXPORTER": "none"}
    submit = subprocess.run(
        [sys.executable, "-m", "tether.cli", "run", "tests.cli.agents_progress:gated_react",
         "--input", '"refund A-7"', "--guards", GUARDS, "--detach"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stderr
    run_id = submit.stdout.strip()
    t = Tether(db)

    first = tether_cli({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": first_endpoint}, "worker",
                       "--lease-ttl", "2", "--poll", "0.1")
    try:
        wait_until(lambda: any(e.kind == v.STEP_STARTED and e.name == "tool:lookup"
                               for e in t.events(run_id)))  # the lookup is in flight (gated)
        if first_sends:  # the first model call reached the collector, and its mark was written
            wait_until(lambda: t.store.spans_exported([run_id]).get(run_id, 0) >= 4)
        else:
            time.sleep(1.0)  # its exporter had time to try (and fail) to send the model call
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()

    gate.touch()
    second = tether_cli({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": second_endpoint}, "worker",
                        "--lease-ttl", "2", "--poll", "0.1")
    try:
        wait_until(lambda: t.get(run_id).status == "succeeded")
        received.wait_for(lambda s: any(x.name.startswith("invoke_agent") for x in s))
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    finally:
        second.kill()
    assert "warning" not in err.lower(), err
    return t, run_id


def assert_one_whole_trace(t: Tether, run_id: str, spans: list[ReceivedSpan]) -> None:
    counts = Counter(s.span_id for s in spans)
    assert max(counts.values()) == 1, [s.name for s in spans if counts[s.span_id] > 1]
    # every span the journal implies arrived, in one trace, rooted at the run
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


@pytest.mark.slow
def test_what_the_killed_worker_sent_is_not_sent_again(tmp_path: Path) -> None:
    with http_receiver() as (endpoint, received):
        t, run_id = crash_and_resume(tmp_path, received, endpoint, endpoint, first_sends=True)
        spans = received.snapshot()
    first = [s for s in spans if s.name == "chat scripted"][:1]
    assert first and first[0].attributes["tether.journal.seq"] == 4  # sent by the first worker
    assert_one_whole_trace(t, run_id, spans)


@pytest.mark.slow
def test_what_the_killed_worker_could_not_send_comes_from_the_next(tmp_path: Path) -> None:
    with http_receiver() as (endpoint, received):
        dead = f"http://127.0.0.1:{closed_port()}"
        t, run_id = crash_and_resume(tmp_path, received, dead, endpoint, first_sends=False)
        spans = received.snapshot()
    assert t.store.spans_exported([run_id])[run_id] == t.events(run_id)[-1].seq
    assert_one_whole_trace(t, run_id, spans)  # the first model call included
