"""What live tracing costs: CPU per durable step with OTLP export on vs off, the same run.

    make bench-tracing
    .venv/bin/python benchmarks/bench_tracing.py [--rounds 8] [--blocks 10] [--iterations 1000]
                                                 [--pairing interleaved|together|alternate]
                                                 [--collector receiver|phoenix] [--out FILE.md]
                                                 [--model scripted|openai-http ...]

A timed run is one agent of `--iterations` model calls and tool calls (each a journaled
`ctx.step`: a `chat` and an `execute_tool` span each). Timed: `time.process_time()` (every thread
of the process, so the exporter's batch thread counts) from submitting the run until, traced,
its last span has been sent. Tracing on means OTEL_EXPORTER_OTLP_ENDPOINT points at a collector
on 127.0.0.1 (OTLP/HTTP), exactly as a user turns it on.

How the two sides are paired (`--pairing`):
- `interleaved` (the default): each round is one fresh process (`--child --blocks N`) holding
  two `Tether`s on databases of their own, one with live export on throughout (as a long-lived
  worker has it; each of its timed windows ends once `LiveExport.force_flush` has sent the
  run's last span) and one without; after an untimed warm-up run each, it runs `--blocks` pairs
  of timed runs, untraced and traced in turn (which goes first alternates). A pair's two runs
  are a fraction of a second apart on the same threads, so the load of a shared machine, which
  swings from second to second, hits both alike: on 2026-12-06, at load ~2, pairs of separate
  processes spread over -37% to +46%.
- `together`: a round is two fresh processes (`--child`), one traced, started at once, each
  timing one run after an untimed warm-up run (imports, database, exporter); off means the
  OTEL_* variables unset, so the OpenTelemetry SDK is not even imported. A traced run's live
  export is started for it and closed inside its window.
- `alternate`: the same processes, one after the other, each alone, alternating which goes
  first (only a quiet machine rewards it).
Every traced run's exporter must have sent as many spans as the run has, and the collector must
then hold every span of every traced run.

The model step (`--model`, repeatable; by default both, one after the other, each its own table
and verdict): `scripted`, the in-process ScriptedModel, the cheapest step a run has and so the
worst case for the ratio; `openai-http`, Tether's OpenAI-compatible HTTP client
(`OpenAIChatModel`: httpx, JSON) against a minimal OpenAI-compatible server in this driver
process (`chat_server`: stdlib, `/v1/chat/completions`, one `lookup` tool call a reply), whose
CPU, like the collector's, is not counted; it must have answered exactly one completion per model
step of every run, warm-ups included.

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
import json
import os
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

from benchmarks.tracing.chat_server import HTTP_MODEL, chat_server  # noqa: E402
from benchmarks.tracing.cpu import GcTimer, breakdown  # noqa: E402
from benchmarks.tracing.report import render  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "tracing.md"
MODELS = ("scripted", "openai-http")
#: interleaved: 80 pairs of runs a model; a run's 2001 spans are about one batch (`BATCH_SIZE`),
#: as a busy long-lived worker sends them
DEFAULT_ROUNDS, DEFAULT_BLOCKS, DEFAULT_ITERATIONS = 8, 10, 1000


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


def submitted(n: int, base_url: str | None) -> tuple[Any, Any]:
    """The agent and its input for a run of `n` turns with the model step `base_url` picks."""
    return (stepper, n) if base_url is None else (
        http_stepper, {"iterations": n, "base_url": base_url})


async def child(iterations: int, db: str, base_url: str | None) -> dict[str, Any]:
    """A fresh process's one timed run, traced when the OTEL_* variables are set."""
    from tether import Tether
    from tether.observe import export_live
    from tether.observe.otel import otlp_configured

    tether = Tether(db)
    with export_live(tether) or contextlib.nullcontext():  # None without OTEL_* set
        # warm-up: imports, database, exporter and its first sends, the model client's connection
        warm = await tether.run(*submitted(5, base_url))
    result = await timed_run(tether, iterations, base_url, warm.id, fresh=otlp_configured())
    if base_url is not None:
        await http_model(base_url).aclose()
    return result


async def interleaved_child(iterations: int, blocks: int, db: str,
                            base_url: str | None) -> list[dict[str, Any]]:
    """`blocks` pairs of timed runs in this one process, untraced and traced in turn (which goes
    first alternates), each side on a database and `Tether` of its own: a pair's two runs are a
    fraction of a second apart on the same threads, so the machine's drifting load hits both
    alike. The traced side has live export on throughout, as a long-lived worker has, and each
    of its timed windows ends once `force_flush` has sent the run's last span; the untraced side
    never has it (the process has the OpenTelemetry SDK imported, for the other)."""
    from tether import Tether
    from tether.observe import export_live

    off, on = Tether(db + ".off"), Tether(db + ".on")
    live = export_live(on)
    if live is None:
        raise SystemExit("tracing on, but no OTEL_EXPORTER_OTLP_* endpoint reached the child")
    warm = {False: (await off.run(*submitted(5, base_url))).id,
            True: (await on.run(*submitted(5, base_url))).id}
    if not live.force_flush():
        raise SystemExit("the warm-up run's spans could not be sent")
    pairs = []
    for b in range(blocks):
        pair: dict[str, Any] = {}
        for traced in ((False, True) if b % 2 == 0 else (True, False)):
            pair["on" if traced else "off"] = await timed_run(
                on if traced else off, iterations, base_url, warm[traced] if b == 0 else None,
                live=live if traced else None)
        pairs.append(pair)
    live.close()
    if base_url is not None:
        await http_model(base_url).aclose()
    return pairs


async def timed_run(tether: Any, iterations: int, base_url: str | None, warm_id: str | None,
                    *, live: Any = None, fresh: bool = False) -> dict[str, Any]:
    """One run of `iterations` turns, its CPU timed from submitting it until, traced, its last
    span was sent: by a live export started for it and closed (`fresh`), or by the long-lived
    `live` flushed. `warm_id`: the warm-up run, whose spans the collector also holds."""
    from tether.observe import export_live, run_spans
    from tether.store import vocabulary as v

    if fresh:
        live = export_live(tether)  # the timed run's own: it sends that run's spans only
        if live is None:
            raise SystemExit("tracing on, but no OTEL_EXPORTER_OTLP_* endpoint reached the child")
    before = (0, 0.0, 0.0) if live is None else (
        live.exporter.sent, live.tick_cpu_s, live.exporter.cpu_s)
    gc_timer = GcTimer()
    cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
    record = await tether.run(*submitted(iterations, base_url))
    if fresh:
        live.close()  # the last spans, sent
    elif live is not None and not live.force_flush():
        raise SystemExit("a traced run's spans could not be sent within the flush's timeout")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    main = time.thread_time() - main
    gc_timer.stop()
    assert record.status == "succeeded", record.error
    steps = sum(1 for e in tether.events(record.id) if e.kind == v.STEP_COMPLETED)
    tick = exporter = 0.0
    if live is not None:
        tick, exporter = live.tick_cpu_s - before[1], live.exporter.cpu_s - before[2]
    return {"breakdown": breakdown(tether, record.id) if live is not None else {},
            "cpu_s": cpu, "wall_s": wall, "steps": steps, "main_cpu_s": main,
            "gc_cpu_s": gc_timer.cpu_s, "gc_full": gc_timer.full,
            "spans": len(run_spans(tether, record.id)),
            "warmup_spans": len(run_spans(tether, warm_id)) if warm_id else 0,
            "sent": live.exporter.sent - before[0] if live is not None else 0,
            # CPU timed inside tracing's own code paths during the window (see render)
            "own_cpu_s": tick + exporter, "tick_cpu_s": tick}


# -- the driver -------------------------------------------------------------------------------
def measure(sides: tuple[bool, ...], iterations: int, endpoint: str, project: str,
            base_url: str | None) -> list[dict[str, Any]]:
    """Run one measured process per side (traced or not), all started at once; their results
    in the order of `sides`."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-tracing-") as tmp:
        procs = [spawn(traced, ["--iterations", str(iterations)], Path(tmp) / f"t{i}.db",
                       endpoint, project, base_url) for i, traced in enumerate(sides)]
        return [finished(proc) for proc in procs]


def measure_interleaved(blocks: int, iterations: int, endpoint: str, project: str,
                        base_url: str | None) -> list[dict[str, Any]]:
    """One measured process running `blocks` (untraced, traced) pairs of runs in turn."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-tracing-") as tmp:
        pairs: list[dict[str, Any]] = finished(spawn(
            True, ["--iterations", str(iterations), "--blocks", str(blocks)],
            Path(tmp) / "t.db", endpoint, project, base_url))
        return pairs


def spawn(traced: bool, args: list[str], db: Path, endpoint: str, project: str,
          base_url: str | None) -> subprocess.Popen[str]:
    """A measured process (`--child`), with the OTEL_* variables set when `traced`."""
    env = {k: val for k, val in os.environ.items() if not k.startswith("OTEL_")}
    if traced:
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                    "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"})
    model = [] if base_url is None else ["--base-url", base_url]
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *args, "--db", str(db), *model],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen[str]) -> Any:
    """What a measured process printed last (JSON), with the tracing warnings it logged."""
    out, err = proc.communicate(timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"the measured process failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    warnings = [ln for ln in err.splitlines() if "tracing:" in ln]
    # a list of {"off": ..., "on": ...} pairs (interleaved) or one measurement
    sides = [side for pair in result for side in pair.values()] if isinstance(result, list) \
        else [result]
    for side in sides:
        side["warnings"] = warnings
    return result


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
    """`args.rounds` rounds of (untraced, traced) measurements for one model step: a pair of
    processes per round, or with `--pairing interleaved` a process per round holding
    `args.blocks` pairs of runs. Each result carries its round (`round`) for the table."""
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    for i in range(args.rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        if args.pairing == "interleaved":
            results = [(traced, pair["on" if traced else "off"])
                       for pair in measure_interleaved(args.blocks, args.iterations, endpoint,
                                                       project, base_url)
                       for traced in (False, True)]
        elif args.pairing == "together":
            results = list(zip(order, measure(order, args.iterations, endpoint, project,
                                              base_url), strict=True))
        else:
            results = [(traced, measure((traced,), args.iterations, endpoint, project,
                                        base_url)[0]) for traced in order]
        for traced, result in results:
            result["round"] = i + 1
            (on if traced else off).append(result)
        ratios = [b["cpu_s"] / b["steps"] / (a["cpu_s"] / a["steps"])
                  for a, b in zip(off, on, strict=True) if b["round"] == i + 1]
        print(f"{model} round {i + 1}: {len(ratios)} pair(s), on/off median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}..{max(ratios):.3f})",
              flush=True)
    for r in on:
        if r["sent"] != r["spans"] or r["warnings"]:
            raise SystemExit(f"a traced run did not export its whole run: {r}")
    return off, on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="measured processes (pairs of them unless interleaved); "
                             f"default {DEFAULT_ROUNDS} interleaved, 10 otherwise")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help="turns (a model call and a tool call) per timed run")
    parser.add_argument("--blocks", type=int, default=None,
                        help=f"interleaved: pairs of runs per measured process (default "
                             f"{DEFAULT_BLOCKS})")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--collector", choices=("receiver", "phoenix"), default="receiver")
    parser.add_argument("--pairing", choices=("interleaved", "together", "alternate"),
                        default="interleaved")
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="the model step (repeatable; default: both, scripted first)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    interleaved = args.pairing == "interleaved"
    if args.child:
        print(json.dumps(asyncio.run(
            interleaved_child(args.iterations, args.blocks, args.db, args.base_url)
            if args.blocks is not None else
            child(args.iterations, args.db, args.base_url))))
        return 0
    if args.rounds is None:
        args.rounds = DEFAULT_ROUNDS if interleaved else 10
    if args.blocks is None:
        args.blocks = DEFAULT_BLOCKS

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
            warmups = sum(1 for r in off + on if r["warmup_spans"])
            expected = len(off + on) * args.iterations + 5 * warmups
            if answered is not None and answered() != expected:
                raise SystemExit(f"the chat server answered {answered()} completions, not the "
                                 f"{expected} the {model} rounds' model steps asked for")
        sent = sum(r["spans"] + r["warmup_spans"] for _, _, on, _ in tables for r in on)
        stored = held(sent)
    if stored != sent:
        raise SystemExit(f"the collector holds {stored} spans, not the {sent} the traced rounds "
                         "sent")
    load = (load_before, os.getloadavg()[0])
    default = (args.out == OUT and args.rounds == DEFAULT_ROUNDS
               and args.iterations == DEFAULT_ITERATIONS and args.blocks == DEFAULT_BLOCKS
               and args.collector == "receiver" and args.pairing == "interleaved"
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
