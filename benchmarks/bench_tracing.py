"""What live tracing costs: CPU per durable step with OTLP export on vs off, the same run.

    make bench-tracing
    .venv/bin/python benchmarks/bench_tracing.py [--rounds 10] [--iterations 1000]
                                                 [--collector receiver|phoenix] [--out FILE.md]
                                                 [--pairing together|alternate]
                                                 [--model scripted|openai-http ...]

Each measurement is a fresh process (`--child`) that runs one agent of `--iterations` model
calls and tool calls (each a journaled `ctx.step`: a `chat` and an `execute_tool` span each),
after an untimed warm-up run that imports everything, opens the database and, with tracing on,
starts the exporter: a long-lived worker pays those once. Timed: `time.process_time()` (every
thread of the process, so the exporter's batch thread counts) from submitting the run until the
live export is closed (its last spans sent). Tracing on means OTEL_EXPORTER_OTLP_ENDPOINT points
at a collector on 127.0.0.1 (OTLP/HTTP), exactly as a user turns it on; off means the variables
are unset (then the OpenTelemetry SDK is not even imported). In each round the two sides run at
the same time, side by side (`--pairing together`, the default): on a machine shared with other
work, whose load swings from minute to minute, a round's two processes then see the same load;
`--pairing alternate` runs them one after the other, each alone, alternating which goes first, so
that neither shares the two cores with the other and the driver's servers serve one client at a
time, which only a quiet machine rewards (on 2026-12-06, at load ~1-3, its rounds' ratios spread
over -39% to +61% against -4% to +6% side by side). The child reports how many spans the exporter
had sent, which must equal the run's span count, and the collector must then hold every span of
every traced run.

The model step (`--model`, repeatable; by default both, one after the other, each its own table
and verdict): `scripted`, the in-process ScriptedModel, the cheapest step a run has and so the
worst case for the ratio; `openai-http`, Tether's OpenAI-compatible HTTP client
(`OpenAIChatModel`: httpx, JSON) against a minimal OpenAI-compatible server in this driver
process (`chat_server`: stdlib, `/v1/chat/completions`, one `lookup` tool call a reply), whose
CPU, like the collector's, is not counted; it must have answered exactly one completion per model
step of every round.

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
import functools
import gc
import json
import os
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

from benchmarks.tracing.chat_server import HTTP_MODEL, chat_server  # noqa: E402
from benchmarks.tracing.report import render  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "tracing.md"
MODELS = ("scripted", "openai-http")


# -- the measured process ---------------------------------------------------------------------
async def stepper(ctx: Any, iterations: int) -> int:
    """`iterations` times (a model call proposing a tool call, then that tool call), with the
    in-process ScriptedModel: the cheapest model step a run can have."""
    from tether.models import ScriptedModel
    from tether.models.messages import ToolCall

    model = ScriptedModel(fn=lambda call: ToolCall(
        id=f"c{len(call.messages)}", name="lookup", arguments={"order": "A-7"}))
    return await turns(ctx, model, iterations)


async def http_stepper(ctx: Any, job: dict[str, Any]) -> int:
    """The same turns with Tether's OpenAI-compatible HTTP client against `job["base_url"]`."""
    return await turns(ctx, http_model(job["base_url"]), job["iterations"])


@functools.cache
def http_model(base_url: str) -> Any:
    """One client per process, as a long-lived worker holds one (its connection pool, kept
    alive across runs, and the SSL context httpx makes once per client)."""
    from tether.models import OpenAIChatModel

    return OpenAIChatModel(HTTP_MODEL, base_url=base_url, api_key="x")


async def turns(ctx: Any, model: Any, iterations: int) -> int:
    from tether.models.messages import Message
    from tether.tools import ToolRegistry, tool

    @tool(side_effect="read")
    def lookup(order: str) -> dict[str, Any]:
        """An order's status."""
        return {"order": order, "status": "shipped"}

    registry = ToolRegistry([lookup])
    messages = [Message.user("Where is A-7?")]
    for i in range(iterations):
        # every request differs, as in a real conversation (so does its journaled hash)
        messages[0] = Message.user(f"Where is A-7? (turn {i})")
        reply = await ctx.model(model, messages, tools=registry.definitions())
        (call,) = reply.tool_calls
        result = await ctx.tool(registry, call.name, call.arguments)
        messages = [messages[0], reply.to_message(), Message.tool(call.id, result.observation())]
    return iterations


async def child(iterations: int, db: str, base_url: str | None) -> dict[str, Any]:
    from tether import Tether
    from tether.observe import export_live, run_spans
    from tether.store import vocabulary as v

    def submitted(n: int) -> tuple[Any, Any]:
        return (stepper, n) if base_url is None else (
            http_stepper, {"iterations": n, "base_url": base_url})

    tether = Tether(db)
    with export_live(tether) or contextlib.nullcontext():  # None without OTEL_* set
        # warm-up: imports, database, exporter and its first sends, the model client's connection
        warm = await tether.run(*submitted(5))
    live = export_live(tether)  # the timed run's own: it sends that run's spans only
    gc_timer = GcTimer()
    cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
    record = await tether.run(*submitted(iterations))
    if live is not None:
        live.close()  # the last spans, sent
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    main = time.thread_time() - main
    gc_timer.stop()
    assert record.status == "succeeded", record.error
    if base_url is not None:
        await http_model(base_url).aclose()
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
def measure(sides: tuple[bool, ...], iterations: int, endpoint: str, project: str,
            base_url: str | None) -> list[dict[str, Any]]:
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
            model = [] if base_url is None else ["--base-url", base_url]
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--child", "--iterations", str(iterations),
                 "--db", str(Path(tmp) / f"t{i}.db"), *model],
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


def rounds(model: str, args: argparse.Namespace, endpoint: str, project: str,
           base_url: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`args.rounds` pairs of measured processes (untraced, traced) for one model step."""
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    for i in range(args.rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        if args.pairing == "together":
            results = list(zip(order, measure(order, args.iterations, endpoint, project,
                                              base_url), strict=True))
        else:
            results = [(traced, measure((traced,), args.iterations, endpoint, project,
                                        base_url)[0]) for traced in order]
        for traced, result in results:
            (on if traced else off).append(result)
            print(f"{model} round {i + 1} tracing {'on ' if traced else 'off'}: "
                  f"{1000 * result['cpu_s'] / result['steps']:.3f} ms CPU/step "
                  f"({result['steps']} steps, {result['sent']} spans sent)", flush=True)
    for r in on:
        if r["sent"] != r["spans"] or r["warnings"]:
            raise SystemExit(f"a traced round did not export its whole run: {r}")
    return off, on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--collector", choices=("receiver", "phoenix"), default="receiver")
    parser.add_argument("--pairing", choices=("together", "alternate"), default="together")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="the model step (repeatable; default: both, scripted first)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.iterations, args.db, args.base_url))))
        return 0

    models = sorted(set(args.model or MODELS), key=MODELS.index)
    project = f"tether-bench-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()[0]
    tables = []
    with contextlib.ExitStack() as stack:
        endpoint, what, held = stack.enter_context(collector(args.collector, project))
        for model in models:
            base_url, answered = None, None
            if model == "openai-http":
                base_url, answered = stack.enter_context(chat_server())
            model_load = os.getloadavg()[0]
            off, on = rounds(model, args, endpoint, project, base_url)
            tables.append((model, off, on, (model_load, os.getloadavg()[0])))
            # one completion per model step, warm-ups included: no call was retried or skipped
            expected = len(off + on) * (args.iterations + 5)
            if answered is not None and answered() != expected:
                raise SystemExit(f"the chat server answered {answered()} completions, not the "
                                 f"{expected} the {model} rounds' model steps asked for")
        sent = sum(r["spans"] + r["warmup_spans"] for _, _, on, _ in tables for r in on)
        stored = held(sent)
    if stored != sent:
        raise SystemExit(f"the collector holds {stored} spans, not the {sent} the traced rounds "
                         "sent")
    load = (load_before, os.getloadavg()[0])
    default = (args.out == OUT and args.rounds == 10 and args.iterations == 1000
               and args.collector == "receiver" and args.pairing == "together"
               and models == list(MODELS))
    command = "make bench-tracing" if default else " ".join(
        [".venv/bin/python benchmarks/bench_tracing.py", *sys.argv[1:]])
    text = render(tables, args, endpoint, what, load, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
