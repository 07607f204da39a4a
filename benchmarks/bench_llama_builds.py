"""What the portable llama.cpp build costs against one built for this very CPU.

Tether ships llama.cpp built for a fixed baseline (x86-64 + AVX2/FMA/F16C/BMI2, see
`mk/llama_portable.sh`) because a `-march=native` build dies with SIGILL on other CPUs. This
measures what that choice costs: the same 1.5B model, the same prompt, prompt-processing and
generation tokens/s, for the installed portable build and for a native build of the same version
(built once into ~/.cache/tether/wheels, never installed: loaded through LLAMA_CPP_LIB_PATH).
Builds alternate round by round so that both see the same machine load. A native build that
dies from a signal is reported as such, which is the point of the portable one.

    .venv/bin/python benchmarks/bench_llama_builds.py     # -> results/models_builds.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VERSION = "0.3.36"

CHILD = r"""
import json, sys, time
import llama_cpp
from tether.models import DEFAULT_WEIGHTS, resolve_weights
path = resolve_weights(DEFAULT_WEIGHTS, allow_download=False)
llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=int(sys.argv[1]), seed=0,
                      verbose=False)
text = ("Tether journals every model call, tool call and sandbox run of an agent so that a "
        "crashed run resumes by replay. ") * 24 + "Write a long essay about durable agents:"
prompt = llm.tokenize(text.encode())
out = []
for _ in range(int(sys.argv[2])):
    llm.reset()
    t = time.perf_counter()
    llm.create_completion(prompt, max_tokens=1, temperature=0.0)
    first = time.perf_counter() - t
    llm.reset()
    t = time.perf_counter()
    done = llm.create_completion(prompt, max_tokens=65, temperature=0.0)
    total = time.perf_counter() - t
    n_gen = done["usage"]["completion_tokens"] - 1
    out.append({"prompt_tokens": len(prompt), "prefill_tok_s": len(prompt) / first,
                "gen_tok_s": n_gen / max(total - first, 1e-9), "gen_tokens": n_gen})
print(json.dumps(out))
"""


def installed_lib() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


def built_lib(variant: str) -> Path:
    """The native libraries of a benchmark-only build (built once, unpacked beside its wheel)."""
    wheel = subprocess.run(["bash", str(ROOT / "mk" / "llama_portable.sh"), sys.executable,
                            VERSION, variant], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    target = Path(wheel).with_suffix("")  # unpacked beside the wheel, once
    if not (target / "llama_cpp" / "lib").is_dir():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(target)
    return target / "llama_cpp" / "lib"


def measure(lib: Path, threads: int, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(lib)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(repeats)], env=env,
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode < 0:
        return {"crash": signal.Signals(-proc.returncode).name}
    if proc.returncode:
        return {"error": proc.stderr.strip()[-400:]}
    return {"runs": json.loads(proc.stdout.strip().splitlines()[-1])}


def _median(rounds: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for rr in rounds if "runs" in rr for r in rr["runs"]]
    return statistics.median(vals) if vals else None


def render(builds: dict[str, list[dict[str, Any]]], threads: int, command: str) -> str:
    lines = [
        "## Models: portable vs native llama.cpp build",
        "",
        "Qwen2.5-Coder-1.5B (q4_k_m), one prompt of ~"
        f"{_prompt_tokens(builds)} tokens then 64 greedy tokens, {threads} threads; each round "
        "runs both builds in turn (portable first), 3 measurements per round, median over all "
        "rounds; generation speed = (time for 65 tokens - time for 1) / 64. *portable* = what "
        "Tether installs (`mk/llama_portable.sh`: x86-64 + AVX2, FMA, F16C, BMI2; no AVX-512, "
        "no AMX); *avx512* = the same plus AVX-512 (no AMX); *native* = `GGML_NATIVE=ON` on "
        "this machine. The last two are built only for this benchmark and never installed.",
        "",
        "| build | prompt tok/s | generation tok/s | outcome |",
        "|---|---|---|---|",
    ]
    for name, rounds in builds.items():
        pre, gen = _median(rounds, "prefill_tok_s"), _median(rounds, "gen_tok_s")
        bad = [r.get("crash") or r.get("error") for r in rounds if "runs" not in r]
        outcome = "ok" if not bad else f"{len(bad)} of {len(rounds)} rounds died: {bad[0]}"
        lines.append(f"| {name} | {pre:.1f} | {gen:.1f} | {outcome} |" if pre and gen
                     else f"| {name} | — | — | {outcome} |")
    p = builds.get("portable", [])
    for other in ("avx512", "native"):
        o = builds.get(other, [])
        pp, op, pg, og = (_median(p, "prefill_tok_s"), _median(o, "prefill_tok_s"),
                          _median(p, "gen_tok_s"), _median(o, "gen_tok_s"))
        if pp and op and pg and og:
            lines += ["", f"Portable / {other}: prompt {pp / op:.2f}, generation {pg / og:.2f}."]
    flags = sorted(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in _cpu_flags())
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU flags include "
              f"{', '.join(flags)}; load average {os.getloadavg()[0]:.1f} at the end.",
              "", "Reproduce:", "", "```", command, "```", ""]
    return "\n".join(lines)


def _prompt_tokens(builds: dict[str, list[dict[str, Any]]]) -> int:
    for rounds in builds.values():
        for r in rounds:
            if "runs" in r:
                return int(r["runs"][0]["prompt_tokens"])
    return 0


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    libs = {"portable": installed_lib(), "avx512": built_lib("avx512"),
            "native": built_lib("native")}
    builds: dict[str, list[dict[str, Any]]] = {k: [] for k in libs}
    for _ in range(args.rounds):
        for name, lib in libs.items():
            builds[name].append(measure(lib, args.threads, 3))
    text = render(builds, args.threads, "make bench-models   # or: .venv/bin/python "
                  "benchmarks/bench_llama_builds.py")
    print(text)
    if not args.no_write:
        out = ROOT / "benchmarks" / "results" / "models_builds.md"
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
