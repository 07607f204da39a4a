"""The text of bench-tracing's results file (benchmarks/results/tracing.md): one table,
verdict and breakdown per model step, and what was measured."""

from __future__ import annotations

import argparse
import os
import platform
import random
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
    low, high = median_interval(ratios)
    added_us = 1000 * statistics.median(b - a for a, b in zip(off_ms, on_ms, strict=True))

    def part(key: str, unit: str = " µs") -> str:
        return f"{statistics.median(r['breakdown'][key] for r in on):.0f}{unit}"

    def diff_us(key: str) -> float:  # median of the pairs' on - off, per step
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
    verdict = ("within the 5% target, the whole interval too" if high - 1 <= TARGET else
               "within the 5% target at the median, but not over the whole interval"
               if overhead <= TARGET else "over the 5% target")
    rows = "\n".join(table_rows(off, on, pairing))
    if model == "scripted":
        heavier = (f"the same {added_us:.0f} µs is under 5% of any step that costs "
                   f"{added_us / 50:.1f} ms of CPU or more" if added_us > 0 else
                   "here the pairs' noise hid what it adds")
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
the {len(ratios)} pairs' on/off ratios (each pair's two sides measured under the same conditions):
**{overhead:+.1%}**, 95% confidence interval of that median {low - 1:+.1%} to {high - 1:+.1%}
(bootstrap, 2000 resamples of the pairs): {verdict}. The pairs ranged
{min(ratios) - 1:+.1%} to {max(ratios) - 1:+.1%}.
In absolute terms tracing adds **{added_us:.0f} µs of CPU per step** (median of the pairs'
differences). {what}
Timed inside tracing's own code instead, tracing spends **{own_us:.0f} µs of CPU per step**
(median), {own_ratio:.1%} of the same pair's untraced step: the worker thread's
`LiveExport.tick` {tick_us:.0f} µs (taking the events the committer handed over and making
their spans' OTLP bytes, `_wire_spans`), the exporter's thread {sender_us:.0f} µs (requests put
together, the HTTP POST, the export marks). That is the part of the difference above that is
tracing's own work; the rest is what running it costs the process around it (the committer's
hand-over, a second thread, caches) plus the pairs' noise.
Split by thread (medians of the pairs' on - off differences, per step): the worker's main
thread (the run, the committer's hand-over, the live export's tick) **{main_us:+.0f} µs**, the
other threads (the exporter's, the committer's) **{other_us:+.0f} µs**; of it the garbage
collector **{gc_us:+.0f} µs** (full collections in the timed windows: {full_gcs[0]} off,
{full_gcs[1]} on).
Median wall time of a timed run: {wall_off:.2f} s off, {wall_on:.2f} s on (live export turns
the events handed over into spans every 0.25 s, and the last batch is sent before the run is
counted as done).

Where the extra CPU goes, per span (medians over the traced runs, measured on each traced run
after its window): reading its events from the journal {part("read_us")} (live export is handed
them by the committer instead, and reads the journal once per run), making the span's OTLP
protobuf bytes from its events {part("encode_us")} (`_wire_spans`: the bytes the SDK's encoder
makes of the same span; {part("bytes", " bytes")} a span), the HTTP POST by the official
exporter, with its request put together, {part("send_us")}; the per-step difference above,
{1000 * (m_on - m_off):.0f} µs, also holds the hand-over of the committed events, the export
marks and the exporter thread's wake-ups. 1-minute load average {load[0]:.1f} before this
table's rounds and {load[1]:.1f} after.
"""


def median_interval(ratios: list[float], resamples: int = 2000) -> tuple[float, float]:
    """The 95% bootstrap interval of the median of `ratios`: how far the machine's noise leaves
    the verdict open (seeded, so the same measurements give the same interval)."""
    rng = random.Random(0)
    n = len(ratios)
    medians = sorted(statistics.median(rng.choices(ratios, k=n)) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def table_rows(off: list[dict[str, Any]], on: list[dict[str, Any]], pairing: str) -> list[str]:
    """A row per round: its pair, or (interleaved) the medians of the pairs its process ran."""
    rows = []
    for n in sorted({r["round"] for r in on}):
        a_ms = per_step_ms([r for r in off if r["round"] == n])
        b_ms = per_step_ms([r for r in on if r["round"] == n])
        ratio = statistics.median(b / a for a, b in zip(a_ms, b_ms, strict=True))
        order = (f"{len(a_ms)} pairs of runs in one process" if pairing == "interleaved" else
                 "side by side" if pairing == "together" else
                 "off first" if n % 2 == 1 else "on first")
        rows.append(f"| {n} | {order} | {statistics.median(a_ms):.3f} ms | "
                    f"{statistics.median(b_ms):.3f} ms | {ratio:.3f} |")
    return rows


def render(tables: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]],
                              tuple[float, float]]], args: argparse.Namespace, endpoint: str,
           collector: str, load: tuple[float, float], command: str) -> str:
    """The results file: what was measured, then one table per model (`tables`: model, off, on,
    the load around its rounds), the scripted one first."""
    on = tables[0][2]
    steps, spans = on[0]["steps"], on[0]["spans"]
    quiet = "quiet" if load[0] < 1.5 and load[1] < 1.5 else "shared with other work"
    interleaved = args.pairing == "interleaved"
    pairing = ("each round is one fresh process that ran, after an untimed warm-up run of each "
               f"side, {args.blocks} pairs of timed runs, an untraced and a traced one in turn "
               "(which goes first alternates), each side on a database and `Tether` of its own: "
               "a pair's two runs are a fraction of a second apart on the same threads, so the "
               "machine's drifting load hits both alike (the default; pairs of separate "
               "processes, side by side or one after the other, spread by ±40% on this shared "
               "machine)" if interleaved else
               "in each round the two sides ran at the same time, side by side, so that both "
               "saw the same load"
               if args.pairing == "together" else
               "in each round the two sides ran one after the other, each alone (alternating "
               "which goes first), so that neither shares the two cores with the other and the "
               "driver's servers serve one client at a time (for a quiet machine: on a shared "
               "one each side sees its own load)")
    off_means = ("the other `Tether` of the same process, which never has live export (the "
                 "process has the OpenTelemetry SDK imported, for the traced side)" if interleaved
                 else "the variables unset (the OpenTelemetry SDK is not imported)")
    until = ("the live export, on throughout as in a long-lived worker, has sent the run's last "
             "span (`LiveExport.force_flush`)" if interleaved else
             "the live export started for it has sent its last span")
    where = ("in a process that ran both sides" if interleaved
             else "measured in a fresh process per round after an untimed warm-up run")
    scripted_off = next((statistics.median(per_step_ms(off)) for model, off, _, _ in tables
                         if model == "scripted"), None)
    sections = "\n".join(render_model(model, off, on_, args.pairing, model_load, scripted_off)
                         for model, off, on_, model_load in tables)
    names = " and then ".join(MODEL_TITLE[model].split(" (")[0] for model, *_ in tables)
    return f"""## Tracing overhead: CPU per durable step, live OTLP export on vs off ({names})

One run of {args.iterations} model calls and {args.iterations} tool calls ({steps} journaled steps,
{spans} spans: `invoke_agent`, `chat`, `execute_tool`), {where}; CPU is the whole
process's (`time.process_time()`, so the exporter's batch thread counts), from submitting the
run until {until}.
**On**: `OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}`, OTLP/HTTP protobuf, to {collector}; its
CPU is not counted. Every traced run's exporter reported all {spans} spans sent, and the
collector then held every span of every traced run (warm-ups included).
**Off**: {off_means}. {args.rounds} rounds per
table; {pairing}. One table per model step: {names}.

{sections}
Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()};
1-minute load average {load[0]:.1f} before and {load[1]:.1f} after: the machine was {quiet}.

Reproduce:

```
{command}
```
"""
