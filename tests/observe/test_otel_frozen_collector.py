"""Issue 14: a collector that accepts connections but stops answering (frozen: SIGSTOP) neither
blocks nor fails a run; once it answers again, it gets every span of every run, each once.

A dead collector (connections refused) is test_otel_dead_collector.py. A frozen one is the
harder case: the exporter's request hangs until its timeout, so anything on the run's path that
waited for it would stall the run with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import agents_progress
from tether import Tether
from tether.observe import export_live, run_spans

from .test_otel_export import OTEL_VARS
from .test_spans import GUARDS, thinking_react

ROOT = Path(__file__).resolve().parents[2]
#: an OTLP/HTTP collector in a process of its own (so that it can be frozen); it prints its
#: URL, then answers each line on stdin with the span ids it holds
_COLLECTOR = """
import sys
from tests.observe.otel_receiver import http_receiver
with http_receiver() as (url, received):
    print(url, flush=True)
    for _ in sys.stdin:
        print(" ".join(s.span_id for s in received.snapshot()), flush=True)
"""


class Collector:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _COLLECTOR], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.url = self.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def span_ids(self) -> list[str]:
        self.stdin.write("?\n")
        self.stdin.flush()
        return self.stdout.readline().split()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    c = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    yield c
    c.proc.send_signal(signal.SIGCONT)
    c.proc.kill()
    c.proc.wait(10)


async def test_a_frozen_collector_neither_blocks_nor_loses_spans(
        db_path: str, collector: Collector, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    t = Tether(db_path, guards=GUARDS)
    live = export_live(t)
    assert live is not None
    try:
        first = await t.run(thinking_react, "refund A-7")
        assert live.force_flush(timeout_s=10)  # the collector answers: it has the first run
        collector.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        runs = [await t.run(agents_progress.fans_out, 2) for _ in range(3)]
        took = time.monotonic() - started
        assert [r.status for r in runs] == ["succeeded"] * 3
        # a liveness bound, not a speed target: these runs take well under a second, while a
        # run held up by the frozen collector waits out the exporter's 10 s timeouts
        assert took < 20, f"the runs took {took:.1f}s while the collector was frozen"
        assert not live.force_flush(timeout_s=0.5)  # frozen: nothing can be sent now
        collector.proc.send_signal(signal.SIGCONT)
        assert live.force_flush(timeout_s=30)  # the exporter's retries reach it now
    finally:
        live.close()
        t.close()
    t = Tether(db_path)
    try:
        expected = [s.span_id for r in (first, *runs) for s in run_spans(t, r.id)]
    finally:
        t.close()
    received = Counter(collector.span_ids())
    assert received and max(received.values()) == 1, "a span was sent twice"
    assert sorted(received) == sorted(expected)
