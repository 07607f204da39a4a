"""What live tracing costs: CPU per durable step with OTLP export on vs off, the same run.

    make bench-tracing
    .venv/bin/python benchmarks/bench_tracing.py [--rounds 10] [--iterations 1000]
                                                 [--collector receiver|phoenix] [--out FILE.md]
                                                 [--pairing together|alternate]

Each measurement is a fresh process (`--child`) that runs one agent of `--iterations` model
calls and tool calls (each a journaled `ctx.step`: a `chat` and an `execute_tool` span each),
after an untimed warm-up run that imports everything, opens the database and, with tracing on,
starts the exporter: a long-lived worker pays those once. Timed: `time.process_time()` (every
thread of the process, so the exporter's batch thread counts) from submitting the run until the
live export is closed (its last spans sent). Tracing on means OTEL_EXPORTER_OTLP_ENDPOINT points
at a collector on 127.0.0.1 (OTLP/HTTP), exactly as a user turns it on; off means the variables
are unset (then the OpenTelemetry SDK is not even imported). In each round the two sides run at
the same time, side by side (`--pairing together`, the default): on a shared machine whose load
swings from minute to minute, a round's two processes then see the same load, which alternating
which side goes first (`--pairing alternate`) does not give them; the child reports how many spans
the exporter had sent, which must equal the run's span count, and the collector must then hold
every span of every traced run.

The collector (`--collector`): by default a minimal OTLP/HTTP receiver in this driver process
(tests/observe/otel_receiver.py: decodes each request with the official protobuf definitions and
keeps the spans), because on a 2-core machine Arize Phoenix's own work (it stores each span in
SQLite, far more CPU than sending it) competes with the measured process; `--collector phoenix`
exports to the Phoenix `make phoenix` runs instead and checks that its REST API lists them.

Writes `benchmarks/results/tracing.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "tracing.md"
TARGET = 0.05  # the bound on the overhead


# -- the measured process ---------------------------------------------------------------------
async def stepper(ctx: Any, iterations: int) -> int:
    """`iterations` times (a model call proposing a tool call, then that tool call)."""
    from tether.models import ScriptedModel
    from tether.models.messages import Message, ToolCall
    from tether.tools import ToolRegistry, tool

    @tool(side_effect="read")
    def lookup(order: str) -> dict[str, Any]:
        """An order's status."""
        return {"order": order, "status": "shipped"}

    registry = ToolRegistry([lookup])
    model = ScriptedModel(fn=lambda call: ToolCall(
        id=f"c{len(call.messages)}", name="lookup", arguments={"order": "A-7"}))
    messages = [Message.user("Where is A-7?")]
    for i in range(iterations):
        # every request differs, as in a real conversation (so does its journaled hash)
        messages[0] = Message.user(f"Where is A-7? (turn {i})")
        reply = await ctx.model(model, messages, tools=registry.definitions())
        (call,) = reply.tool_calls
        result = await ctx.tool(registry, call.name, call.arguments)
        messages = [messages[0], reply.to_message(), Message.tool(call.id, result.observation())]
    return iterations


async def child(iterations: int, db: str) -> dict[str, Any]:
    from tether import Tether
    from tether.observe import export_live, run_spans
    from tether.store import vocabulary as v

    tether = Tether(db)
    with export_live(tether) or contextlib.nullcontext():  # None without OTEL_* set
        warm = await tether.run(stepper, 5)  # warm-up: imports, database, exporter, its first sends
    live = export_live(tether)  # the timed run's own: it sends that run's spans only
    gc_timer = GcTimer()
    cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
    record = await tether.run(stepper, iterations)
    if live is not None:
        live.close()  # the last spans, sent
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    main = time.thread_time() - main
    gc_timer.stop()
    assert record.status == "succeeded", record.error
    steps = sum(1 for e in tether.events(record.id) if e.kind == v.STEP_COMPLETED)
    return {"breakdown": breakdown(tether, record.id) if live is not None else {},
            "cpu_s": cpu, "wall_s": wall, "steps": steps, "main_cpu_s": main,
            "gc_cpu_s": gc_timer.cpu_s, "gc_full": gc_timer.full,
            "spans": len(run_spans(tether, record.id)),
            "warmup_spans": len(run_spans(tether, warm.id)),
            "sent": live.exporter.sent if live is not None else 0,
            # CPU timed inside tracing's own code paths during the window (see render)
            "own_cpu_s": live.tick_cpu_s + live.exporter.cpu_s if live is not None else 0.0,
            "tick_cpu_s": live.tick_cpu_s if live is not None else 0.0}


class GcTimer:
    """The CPU the garbage collector took (in any thread) and its full collections, until
    `stop`: tracing keeps spans and events alive for a while, which the collector may pay for."""

    def __init__(self) -> None:
        self.cpu_s, self.full, self._started = 0.0, 0, 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.cpu_s += time.process_time() - self._started
            self.full += info["generation"] == 2

    def stop(self) -> None:
        gc.callbacks.remove(self._tick)


def breakdown(tether: Any, run_id: str) -> dict[str, float]:
    """Where a traced run's extra CPU goes, per span, measured after the timed window on the
    same run: reading its events from the journal, making the spans' OTLP bytes from them (as
    live export does from the events handed over), and sending them by the exporter the
    environment configures."""
    from tether.observe._otlp_send import WireSink
    from tether.observe._otlp_wire import SpanEncoder
    from tether.observe._wire_spans import WireSpans
    from tether.observe.otel import BATCH_SIZE, exporter_from_env

    run = tether.get(run_id)
    t0 = time.process_time()
    events = tether.store.load_events(run_id)
    t1 = time.process_time()
    wire = WireSpans(run, SpanEncoder())
    queued = [q for e in events for q in wire.feed_event(e)] + wire.close_open_encoded()
    t2 = time.process_time()
    exporter = exporter_from_env()  # the same spans again (same ids: Phoenix keeps one copy)
    sink = WireSink(exporter)  # type: ignore[arg-type]
    spans = [span for _, _, span in queued]
    for i in range(0, len(spans), BATCH_SIZE):
        sink.send(spans[i:i + BATCH_SIZE])
    t3 = time.process_time()
    exporter.shutdown()
    n = len(spans)
    return {"read_us": 1e6 * (t1 - t0) / n, "encode_us": 1e6 * (t2 - t1) / n,
            "send_us": 1e6 * (t3 - t2) / n, "bytes": sum(len(s) for s in spans) / n}


# -- the driver -------------------------------------------------------------------------------
def measure(sides: tuple[bool, ...], iterations: int, endpoint: str,
            project: str) -> list[dict[str, Any]]:
    """Run one measured process per side (traced or not), all started at once; their results
    in the order of `sides`."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-tracing-") as tmp:
        procs = []
        for i, traced in enumerate(sides):
            env = {k: val for k, val in os.environ.items() if not k.startswith("OTEL_")}
            if traced:
                env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                            "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"})
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--child", "--iterations", str(iterations),
                 "--db", str(Path(tmp) / f"t{i}.db")],
                cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"the measured process failed:\n{err}")
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            result["warnings"] = [ln for ln in err.splitlines() if "tracing:" in ln]
            results.append(result)
    return results


def per_step_ms(results: list[dict[str, Any]]) -> list[float]:
    return [1000 * r["cpu_s"] / r["steps"] for r in results]


def render(off: list[dict[str, Any]], on: list[dict[str, Any]], args: argparse.Namespace,
           endpoint: str, collector: str, load: tuple[float, float], command: str) -> str:
    off_ms, on_ms = per_step_ms(off), per_step_ms(on)
    m_off, m_on = statistics.median(off_ms), statistics.median(on_ms)
    ratios = [b / a for a, b in zip(off_ms, on_ms, strict=True)]
    overhead = statistics.median(ratios) - 1  # paired: a round's two sides saw the same load
    added_us = 1000 * statistics.median(b - a for a, b in zip(off_ms, on_ms, strict=True))
    def part(key: str, unit: str = " µs") -> str:
        return f"{statistics.median(r['breakdown'][key] for r in on):.0f}{unit}"

    def diff_us(key: str) -> float:  # median of the rounds' on - off, per step
        return statistics.median(1e6 * (b[key] / b["steps"] - a[key] / a["steps"])
                                 for a, b in zip(off, on, strict=True))

    main_us, gc_us = diff_us("main_cpu_s"), diff_us("gc_cpu_s")
    other_us = statistics.median(
        1e6 * ((b["cpu_s"] - b["main_cpu_s"]) / b["steps"] - (a["cpu_s"] - a["main_cpu_s"])
               / a["steps"]) for a, b in zip(off, on, strict=True))
    full_gcs = (sum(r["gc_full"] for r in off), sum(r["gc_full"] for r in on))
    own_us = statistics.median(1e6 * r["own_cpu_s"] / r["steps"] for r in on)
    tick_us = statistics.median(1e6 * r["tick_cpu_s"] / r["steps"] for r in on)
    sender_us = statistics.median(1e6 * (r["own_cpu_s"] - r["tick_cpu_s"]) / r["steps"]
                                  for r in on)
    own_ratio = statistics.median(1e6 * r["own_cpu_s"] / r["steps"] / (1000 * a)
                                  for r, a in zip(on, off_ms, strict=True))
    wall_off = statistics.median(r["wall_s"] for r in off)
    wall_on = statistics.median(r["wall_s"] for r in on)
    verdict = "within" if overhead <= TARGET else "over"
    steps, spans = on[0]["steps"], on[0]["spans"]
    quiet = "quiet" if load[0] < 1.5 and load[1] < 1.5 else "shared with other work"
    together = args.pairing == "together"

    def order(i: int) -> str:
        return "side by side" if together else ("off first" if i % 2 == 0 else "on first")

    pairing = ("in each round the two sides ran at the same time, side by side, so that both "
               "saw the same load" if together else "alternating which side runs first")
    rows = "\n".join(
        f"| {i + 1} | {order(i)} | {a:.3f} ms | {b:.3f} ms | "
        f"{b / a:.3f} |" for i, (a, b) in enumerate(zip(off_ms, on_ms, strict=True)))
    return f"""## Tracing overhead: CPU per durable step, live OTLP export on vs off

One run of {args.iterations} model calls and {args.iterations} tool calls ({steps} journaled steps,
{spans} spans: `invoke_agent`, `chat`, `execute_tool`), measured in a fresh process per round
after an untimed warm-up run; CPU is the whole process's (`time.process_time()`, so the
exporter's batch thread counts), from submitting the run until the live export has sent its
last span. **On**: `OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}`, OTLP/HTTP protobuf, to
{collector}; its CPU is not counted. Every traced round's exporter reported all {spans} spans
sent, and the collector then held every span of every traced run (warm-ups included).
**Off**: the variables unset (the OpenTelemetry SDK is not imported). {args.rounds} rounds;
{pairing}.

| round | order | off: CPU/step | on: CPU/step | on/off |
|---|---|---|---|---|
{rows}

Median CPU per step {m_off:.3f} ms off, {m_on:.3f} ms on ({m_on / m_off - 1:+.1%}); median of
the rounds' on/off ratios (each round's two sides paired): **{overhead:+.1%}**
({verdict} the 5% target; rounds ranged {min(ratios) - 1:+.1%} to {max(ratios) - 1:+.1%}).
In absolute terms tracing adds **{added_us:.0f} µs of CPU per step** (median of the rounds'
differences). These steps are the cheapest a run has (a scripted model, an in-process tool:
the runtime's own cost), so the ratio is the worst case: the same {added_us:.0f} µs is under 5%
of any step that costs {added_us / 50:.1f} ms of CPU or more (steps that heavy were not
measured here).
Timed inside tracing's own code instead, tracing spends **{own_us:.0f} µs of CPU per step**
(median), {own_ratio:.1%} of the same round's untraced step: the worker thread's
`LiveExport.tick` {tick_us:.0f} µs (taking the events the committer handed over and making
their spans' OTLP bytes, `_wire_spans`), the exporter's thread {sender_us:.0f} µs (requests put
together, the HTTP POST, the export marks). That is the part of the difference above that is
tracing's own work; the rest is what running it costs the process around it (the committer's
hand-over, a second thread, caches) plus the rounds' noise.
Split by thread (medians of the rounds' on - off differences, per step): the worker's main
thread (the run, the committer's hand-over, the live export's tick) **{main_us:+.0f} µs**, the
other threads (the exporter's, the committer's) **{other_us:+.0f} µs**; of it the garbage
collector **{gc_us:+.0f} µs** (full collections in the timed windows: {full_gcs[0]} off,
{full_gcs[1]} on).
Median wall time of the timed run: {wall_off:.2f} s off, {wall_on:.2f} s on (live export turns
the events handed over into spans every 0.25 s, and the last batch is sent before the run is
counted as done).

Where the extra CPU goes, per span (medians over the traced rounds, measured on the timed run
after its window): reading its events from the journal {part("read_us")} (live export is handed
them by the committer instead, and reads the journal once per run), making the span's OTLP
protobuf bytes from its events {part("encode_us")} (`_wire_spans`: the bytes the SDK's encoder
makes of the same span; {part("bytes", " bytes")} a span), the HTTP POST by the official
exporter, with its request put together, {part("send_us")}; the per-step difference above,
{1000 * (m_on - m_off):.0f} µs, also holds the hand-over of the committed events, the export
marks and the exporter thread's wake-ups.

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()};
1-minute load average {load[0]:.1f} before and {load[1]:.1f} after: the machine was {quiet}.

Reproduce:

```
{command}
```
"""


def stored_in_phoenix(phoenix: Any, project: str, sent: int, stall_s: float = 60.0) -> int:
    """How many distinct spans Phoenix lists for the project once it has stored them all or
    stopped storing more for `stall_s`: it queues what it receives and inserts behind, minutes
    behind on a loaded machine."""
    count, last_change = -1, time.monotonic()
    while True:
        now = len({s["context"]["span_id"] for s in phoenix.spans(project, expect=0, settle=0.0)})
        if now != count:
            count, last_change = now, time.monotonic()
            print(f"Phoenix has stored {count} of the {sent} spans", flush=True)
        if count >= sent or time.monotonic() - last_change > stall_s:
            return count
        time.sleep(2.0)


@contextlib.contextmanager
def collector(kind: str, project: str) -> Iterator[tuple[str, str, Callable[[int], int]]]:
    """(OTLP endpoint, what it is, how many distinct spans it holds once `sent` were sent)."""
    if kind == "phoenix":
        from tests.observe import phoenix_support

        phoenix = phoenix_support.start()  # reuses the one `make phoenix` started
        version = phoenix_support.running_version(phoenix.url)
        yield (phoenix.otlp_http, f"Arize Phoenix {version} on 127.0.0.1 (`make phoenix`)",
               lambda sent: stored_in_phoenix(phoenix, project, sent))
        return
    from tests.observe.otel_receiver import http_receiver

    with http_receiver() as (endpoint, received):
        yield (endpoint, "a minimal OTLP/HTTP receiver in the benchmark's driver process "
               "(`tests/observe/otel_receiver.py`)",
               lambda sent: len({s.span_id for s in received.snapshot()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--collector", choices=("receiver", "phoenix"), default="receiver")
    parser.add_argument("--pairing", choices=("together", "alternate"), default="together")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.iterations, args.db))))
        return 0

    project = f"tether-bench-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()[0]
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    with collector(args.collector, project) as (endpoint, what, held):
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            if args.pairing == "together":
                results = list(zip(order, measure(order, args.iterations, endpoint, project),
                                   strict=True))
            else:
                results = [(traced, measure((traced,), args.iterations, endpoint, project)[0])
                           for traced in order]
            for traced, result in results:
                (on if traced else off).append(result)
                print(f"round {i + 1} tracing {'on ' if traced else 'off'}: "
                      f"{1000 * result['cpu_s'] / result['steps']:.3f} ms CPU/step "
                      f"({result['steps']} steps, {result['sent']} spans sent)", flush=True)
        for r in on:
            if r["sent"] != r["spans"] or r["warnings"]:
                raise SystemExit(f"a traced round did not export its whole run: {r}")
        sent = sum(r["spans"] + r["warmup_spans"] for r in on)
        stored = held(sent)
    if stored != sent:
        raise SystemExit(f"the collector holds {stored} spans, not the {sent} the traced rounds "
                         "sent")
    load = (load_before, os.getloadavg()[0])
    command = "make bench-tracing" if args.out == OUT and args.rounds == 10 and \
        args.iterations == 1000 and args.collector == "receiver" and \
        args.pairing == "together" else " ".join(
            [".venv/bin/python benchmarks/bench_tracing.py", *sys.argv[1:]])
    text = render(off, on, args, endpoint, what, load, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
