"""Local model benchmark: calls per second and valid/sensible tool-call rate.

A tool-choice set of 32 prompts written for this benchmark, each needing exactly one of 8 tools.
A call is *valid* when it passes Tether's own checks (known tool, arguments match the JSON schema)
and *sensible* when it picks the expected tool with the expected key arguments. The model runs
in-process under grammar-constrained decoding with three worked examples in the prompt.

    .venv/bin/python benchmarks/bench_models.py            # 1.5B (default) -> results/models.md
    .venv/bin/python benchmarks/bench_models.py --model small --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tether.models import (
    DEFAULT_WEIGHTS,
    SMALL_WEIGHTS,
    Message,
    ModelOutputError,
    ToolCall,
    ToolDefinition,
    ValidatingModel,
    check_response,
)
from tether.models.local import LocalModel


def obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


S = {"type": "string"}
TOOLS = [
    ToolDefinition(
        name="get_weather",
        description="Current weather for a city.",
        parameters=obj(
            {"city": S, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"]
        ),
    ),
    ToolDefinition(
        name="calculate",
        description="Evaluate an arithmetic expression such as '12 * (3 + 4)'.",
        parameters=obj({"expression": S}, ["expression"]),
    ),
    ToolDefinition(
        name="search_web",
        description="Search the web and return the top results.",
        parameters=obj(
            {"query": S, "max_results": {"type": "integer", "minimum": 1, "maximum": 20}}, ["query"]
        ),
    ),
    ToolDefinition(
        name="send_email",
        description="Send an email.",
        parameters=obj({"to": S, "subject": S, "body": S}, ["to", "subject", "body"]),
    ),
    ToolDefinition(
        name="convert_currency",
        description="Convert an amount between currencies (ISO codes like USD, EUR).",
        parameters=obj(
            {"amount": {"type": "number"}, "from_currency": S, "to_currency": S},
            ["amount", "from_currency", "to_currency"],
        ),
    ),
    ToolDefinition(
        name="translate",
        description="Translate text into a target language.",
        parameters=obj({"text": S, "target_language": S}, ["text", "target_language"]),
    ),
    ToolDefinition(
        name="set_timer",
        description="Start a countdown timer.",
        parameters=obj({"minutes": {"type": "integer", "minimum": 1}, "label": S}, ["minutes"]),
    ),
    ToolDefinition(
        name="read_file",
        description="Read a text file from the workspace.",
        parameters=obj({"path": S}, ["path"]),
    ),
]

SYSTEM = "You are an assistant that answers every request by calling exactly one suitable tool."
EXAMPLES: list[tuple[str, ToolCall]] = [
    ("How warm is it in Lisbon in fahrenheit?",
     ToolCall(id="ex1", name="get_weather", arguments={"city": "Lisbon", "unit": "fahrenheit"})),
    ("Please email bob@example.com that the build is green, subject 'CI'.",
     ToolCall(id="ex2", name="send_email", arguments={
         "to": "bob@example.com", "subject": "CI", "body": "The build is green."})),
    ("How much is 250 GBP in JPY?",
     ToolCall(id="ex3", name="convert_currency", arguments={
         "amount": 250, "from_currency": "GBP", "to_currency": "JPY"})),
]  # fmt: skip

# (prompt, expected tool, {argument: expected value}; strings match case-insensitively as a
# substring, numbers exactly, a tuple lists a language's name and its ISO 639-1 code (the schema
# does not say which form to use, so both are sensible).
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("What's the weather in Paris?", "get_weather", {"city": "paris"}),
    ("Is it raining in Tokyo right now?", "get_weather", {"city": "tokyo"}),
    ("Temperature in Berlin in celsius please", "get_weather",
     {"city": "berlin", "unit": "celsius"}),
    ("Do I need a jacket in Oslo today?", "get_weather", {"city": "oslo"}),
    ("What is 17 * 23?", "calculate", {"expression": "17"}),
    ("Compute (45 + 55) / 4", "calculate", {"expression": "45"}),
    ("What's 2 to the power of 10?", "calculate", {"expression": "2"}),
    ("Work out 1234 minus 567", "calculate", {"expression": "1234"}),
    ("Find recent news about the James Webb telescope", "search_web", {"query": "webb"}),
    ("Search the web for the best sourdough recipe", "search_web", {"query": "sourdough"}),
    ("Look up who won the 2018 World Cup, top 3 results", "search_web", {"query": "world cup"}),
    ("Google the release date of Python 3.13", "search_web", {"query": "python"}),
    ("Email alice@example.com with subject 'Lunch' asking if she is free at noon", "send_email",
     {"to": "alice@example.com", "subject": "lunch"}),
    ("Send an email to ops@acme.io titled 'Outage' saying the database is down", "send_email",
     {"to": "ops@acme.io", "subject": "outage"}),
    ("Write to carol@example.org, subject Invoice, that the invoice is attached", "send_email",
     {"to": "carol@example.org", "subject": "invoice"}),
    ("Let dave@example.net know by email (subject: Deploy) that we deploy on Friday", "send_email",
     {"to": "dave@example.net", "subject": "deploy"}),
    ("Convert 100 USD to EUR", "convert_currency",
     {"amount": 100, "from_currency": "usd", "to_currency": "eur"}),
    ("How many Swiss francs is 50 euros?", "convert_currency",
     {"amount": 50, "from_currency": "eur", "to_currency": "chf"}),
    ("What is 1000 JPY in US dollars?", "convert_currency",
     {"amount": 1000, "from_currency": "jpy", "to_currency": "usd"}),
    ("Change 75.5 CAD into GBP", "convert_currency",
     {"amount": 75.5, "from_currency": "cad", "to_currency": "gbp"}),
    ("Translate 'good morning' into Spanish", "translate",
     {"text": "good morning", "target_language": ("spanish", "es")}),
    ("How do you say 'thank you very much' in Japanese?", "translate",
     {"text": "thank you", "target_language": ("japanese", "ja")}),
    ("Translate 'where is the station' to German", "translate",
     {"text": "station", "target_language": ("german", "de")}),
    ("Put 'I love programming' into French", "translate",
     {"text": "programming", "target_language": ("french", "fr")}),
    ("Set a timer for 10 minutes", "set_timer", {"minutes": 10}),
    ("Remind me in 25 minutes to check the oven, label it oven", "set_timer",
     {"minutes": 25, "label": "oven"}),
    ("Start a 5 minute countdown for tea", "set_timer", {"minutes": 5}),
    ("Timer: 45 minutes, label 'laundry'", "set_timer", {"minutes": 45, "label": "laundry"}),
    ("Show me the contents of README.md", "read_file", {"path": "readme.md"}),
    ("Open src/main.py and show it to me", "read_file", {"path": "src/main.py"}),
    ("What's in the file config/settings.yaml?", "read_file", {"path": "settings.yaml"}),
    ("Read docs/CHANGELOG.txt", "read_file", {"path": "changelog.txt"}),
]  # fmt: skip


def sensible(call: ToolCall, tool: str, expect: dict[str, Any]) -> bool:
    if call.name != tool:
        return False
    for key, want in expect.items():
        got = call.arguments.get(key)
        if isinstance(want, tuple):  # a language name or its ISO 639-1 code
            if not isinstance(got, str) or not any(
                w in got.lower() if len(w) > 2 else got.lower() == w for w in want
            ):
                return False
        elif isinstance(want, str):
            if not isinstance(got, str) or want.lower() not in got.lower():
                return False
        elif got != want:
            return False
    return True


def prompt_for(text: str) -> list[Message]:
    msgs = [Message.system(SYSTEM)]
    for i, (q, call) in enumerate(EXAMPLES):
        msgs += [
            Message.user(q),
            Message.assistant(None, [call]),
            Message.tool(call.id, "ok", name=call.name),
        ]
        if i < len(EXAMPLES) - 1:
            msgs.append(Message.assistant("Done."))
    return [*msgs, Message.user(text)]


async def run(which: str, threads: int) -> dict[str, Any]:
    spec = DEFAULT_WEIGHTS if which == "default" else SMALL_WEIGHTS
    load_before = os.getloadavg()[0]
    model = LocalModel(spec, n_ctx=4096, n_threads=threads, allow_download=False, seed=0)
    t0 = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - t0
    # Warm-up (grammar compilation, first-token caches) is not timed.
    await model.complete(
        prompt_for("warm up: weather in Rome"), tools=TOOLS, tool_choice="required"
    )
    latencies, valid, good, out_tokens, failures = [], 0, 0, 0, []
    repaired_by_feedback = 0
    cpu: list[float] = []
    kw: dict[str, Any] = {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False}
    for text, tool, expect in CASES:
        t, c = time.perf_counter(), time.process_time()
        r = await model.complete(prompt_for(text), **kw)
        latencies.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        out_tokens += r.usage.output_tokens
        _, errors = check_response(r, tools=TOOLS, output_schema=None, tool_choice="required")
        ok = not errors and len(r.tool_calls) >= 1
        valid += ok
        hit = ok and sensible(r.tool_calls[0], tool, expect)
        good += hit
        if not ok:  # what Tether's feedback loop (2 rounds) makes of it; not in the timings
            try:
                fixed = await ValidatingModel(model, max_feedback=2).complete(
                    prompt_for(text), **kw
                )
                repaired_by_feedback += sensible(fixed.tool_calls[0], tool, expect)
            except ModelOutputError:
                pass
        if not hit:
            calls = [c.model_dump(include={"name", "arguments"}) for c in r.tool_calls]
            failures.append((text, calls, errors))
    await model.aclose()
    load_after = os.getloadavg()[0]
    total = sum(latencies)
    return {
        "model": spec.name,
        "n": len(CASES),
        "load_s": load_s,
        "calls_per_s": len(CASES) / total,
        "p50_s": statistics.median(latencies),
        "cpu_per_call": sum(cpu) / len(cpu),
        "max_s": max(latencies),
        "valid": valid,
        "sensible": good,
        "after_feedback": good + repaired_by_feedback,
        "out_tok_per_s": out_tokens / total,
        "failures": failures,
        "threads": threads,
        "load_before": load_before,
        "load_after": load_after,
    }


def render(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        "## Models: local tool calling (llama.cpp, grammar-constrained)",
        "",
        f"{len(CASES)} tool-choice prompts over {len(TOOLS)} tools, three worked examples in the "
        'prompt, `tool_choice="required"`, temperature 0. *Valid* = known tool and arguments '
        "that pass the JSON schema; *sensible* = the expected tool with the expected key "
        "arguments, on the first attempt; *after feedback* adds the invalid ones that Tether's "
        "validation feedback loop (at most 2 rounds) turned into sensible calls. One call per "
        "prompt (`parallel_tool_calls=False`), sequential, after one untimed warm-up call. "
        "*CPU s/call* is the process CPU time per call (all llama.cpp threads): unlike wall "
        "time it barely changes when other work shares the machine; on idle cores wall time is "
        "about CPU time divided by the thread count.",
        "",
        "| model | calls/s | p50 latency | max latency | CPU s/call | valid | valid and sensible | "
        "sensible after feedback | output tok/s | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['calls_per_s']:.2f} | {r['p50_s']:.2f} s | {r['max_s']:.2f} s | "
            f"{r['cpu_per_call']:.2f} | "
            f"{r['valid']}/{r['n']} ({100 * r['valid'] / r['n']:.0f}%) | "
            f"{r['sensible']}/{r['n']} ({100 * r['sensible'] / r['n']:.0f}%) | "
            f"{r['after_feedback']}/{r['n']} | "
            f"{r['out_tok_per_s']:.1f} | {r['load_s']:.1f} s |"
        )
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{results[0]['threads']} llama.cpp threads, Python {platform.python_version()}; "
        f"1-minute load average {results[0]['load_before']:.1f} before and "
        f"{results[-1]['load_after']:.1f} after (timings are only comparable at a similar load).",
        "",
    ]
    for r in results:
        if r["failures"]:
            lines.append(f"Misses for {r['model']}:")
            for text, calls, errors in r["failures"]:
                lines.append(f"- {text!r} -> {calls} {errors or ''}".rstrip())
            lines.append("")
    lines += ["Reproduce:", "", "```", command, "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["default", "small", "both"], default="both")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    which = ["default", "small"] if args.model == "both" else [args.model]
    results = [asyncio.run(run(w, args.threads)) for w in which]
    text = render(results, "make bench-models   # or: .venv/bin/python benchmarks/bench_models.py")
    print(text)
    if not args.no_write:
        out = Path(__file__).parent / "results" / "models.md"
        out.write_text(text)
        print(f"wrote {out}")
    best = results[0]
    if best["model"] == DEFAULT_WEIGHTS.name and best["sensible"] / best["n"] < 0.95:
        print("below the 95% target", file=sys.stderr)


if __name__ == "__main__":
    main()
