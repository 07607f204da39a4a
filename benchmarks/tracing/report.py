"""The text of bench-tracing's results file (benchmarks/results/tracing.md): one table,
verdict and breakdown per model step, and what was measured."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from typing import Any

TARGET = 0.05  # the bound on the overhead


def per_step_ms(results: list[dict[str, Any]]) -> list[float]:
    return [1000 * r["cpu_s"] / r["steps"] for r in results]


MODEL_TITLE = {"scripted": "scripted model (`ScriptedModel`, in-process)",
               "openai-http": "OpenAI-compatible HTTP client (`OpenAIChatModel`, httpx, to a "
                              "local server)"}


def render_model(model: str, off: list[dict[str, Any]], on: list[dict[str, Any]],
                 pairing: str, load: tuple[float, float], scripted_off: float | None) -> str:
    """One model's table, verdict and where the difference goes; `scripted_off`: the scripted
    model's median untraced step (ms), when it ran too."""
    off_ms, on_ms = per_step_ms(off), per_step_ms(on)
    m_off, m_on = statistics.median(off_ms), statistics.median(on_ms)
    ratios = [b / a for a, b in zip(off_ms, on_ms, strict=True)]
    overhead = statistics.median(ratios) - 1  # paired: a round's two sides, the same conditions
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

    def order(i: int) -> str:
        return "side by side" if pairing == "together" else (
            "off first" if i % 2 == 0 else "on first")

    rows = "\n".join(
        f"| {i + 1} | {order(i)} | {a:.3f} ms | {b:.3f} ms | "
        f"{b / a:.3f} |" for i, (a, b) in enumerate(zip(off_ms, on_ms, strict=True)))
    if model == "scripted":
        heavier = (f"the same {added_us:.0f} µs is under 5% of any step that costs "
                   f"{added_us / 50:.1f} ms of CPU or more" if added_us > 0 else
                   "here the rounds' noise hid what it adds")
        what = f"""These steps are the cheapest a run has (a scripted model, an in-process tool:
the runtime's own cost), so the ratio is the worst case: {heavier}."""
    else:
        compared = "" if scripted_off is None else (
            f" The untraced step costs {m_off - scripted_off:+.3f} ms against the scripted "
            "model's (medians; the model steps are half the steps, so a model call's client "
            f"costs about {2 * (m_off - scripted_off):.2f} ms of CPU).")
        what = f"""Here the model step is a real model client's: `OpenAIChatModel` builds the
request JSON, POSTs it with httpx over a kept-alive connection to an OpenAI-compatible server
(`/v1/chat/completions`, a minimal stdlib `ThreadingHTTPServer` in the benchmark's driver process
that answers every request with one `lookup` tool call, a fresh call id and a usage block) and
parses the reply. Everything else is as in the table above (the same tool, iterations, pairing
and collector). The client's CPU is in both sides' steps; the server's CPU is not counted, like
the collector's. A real provider answers slower in wall time, not with more client CPU, so this
is the CPU a step with a real model client costs the worker.{compared}"""
    return f"""### With the {MODEL_TITLE[model]}

| round | order | off: CPU/step | on: CPU/step | on/off |
|---|---|---|---|---|
{rows}

Median CPU per step {m_off:.3f} ms off, {m_on:.3f} ms on ({m_on / m_off - 1:+.1%}); median of
the rounds' on/off ratios (each round's two sides paired): **{overhead:+.1%}**
({verdict} the 5% target; rounds ranged {min(ratios) - 1:+.1%} to {max(ratios) - 1:+.1%}).
In absolute terms tracing adds **{added_us:.0f} µs of CPU per step** (median of the rounds'
differences). {what}
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
marks and the exporter thread's wake-ups. 1-minute load average {load[0]:.1f} before this
table's rounds and {load[1]:.1f} after.
"""


def render(tables: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]],
                              tuple[float, float]]], args: argparse.Namespace, endpoint: str,
           collector: str, load: tuple[float, float], command: str) -> str:
    """The results file: what was measured, then one table per model (`tables`: model, off, on,
    the load around its rounds), the scripted one first."""
    on = tables[0][2]
    steps, spans = on[0]["steps"], on[0]["spans"]
    quiet = "quiet" if load[0] < 1.5 and load[1] < 1.5 else "shared with other work"
    pairing = ("in each round the two sides ran at the same time, side by side, so that both "
               "saw the same load (the default: on a machine shared with other work the rounds' "
               "ratios spread far less than with the two sides run one after the other)"
               if args.pairing == "together" else
               "in each round the two sides ran one after the other, each alone (alternating "
               "which goes first), so that neither shares the two cores with the other and the "
               "driver's servers serve one client at a time (for a quiet machine: on a shared "
               "one each side sees its own load)")
    scripted_off = next((statistics.median(per_step_ms(off)) for model, off, _, _ in tables
                         if model == "scripted"), None)
    sections = "\n".join(render_model(model, off, on_, args.pairing, model_load, scripted_off)
                         for model, off, on_, model_load in tables)
    names = " and then ".join(MODEL_TITLE[model].split(" (")[0] for model, *_ in tables)
    return f"""## Tracing overhead: CPU per durable step, live OTLP export on vs off ({names})

One run of {args.iterations} model calls and {args.iterations} tool calls ({steps} journaled steps,
{spans} spans: `invoke_agent`, `chat`, `execute_tool`), measured in a fresh process per round
after an untimed warm-up run; CPU is the whole process's (`time.process_time()`, so the
exporter's batch thread counts), from submitting the run until the live export has sent its
last span. **On**: `OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}`, OTLP/HTTP protobuf, to
{collector}; its CPU is not counted. Every traced round's exporter reported all {spans} spans
sent, and the collector then held every span of every traced run (warm-ups included).
**Off**: the variables unset (the OpenTelemetry SDK is not imported). {args.rounds} rounds per
table; {pairing}. One table per model step: {names}.

{sections}
Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()};
1-minute load average {load[0]:.1f} before and {load[1]:.1f} after: the machine was {quiet}.

Reproduce:

```
{command}
```
"""
