"""Does this CPU run the llama.cpp build Tether ships? Asked before the library is even imported.

The local model's backend is built for a fixed baseline (`mk/llama_portable.sh`): x86-64 with
AVX2, FMA, F16C and BMI2 — never for the build machine's CPU. On a CPU without one of those, the
first matrix multiply would die with SIGILL and take the whole process with it; checking the CPU's
flags first turns that into one line that names the missing feature and what to do.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tether.models.errors import ModelUnavailableError

#: What the shipped x86-64 build uses (and `tests/models/test_models_portable.py` checks that it
#: uses nothing beyond). Names as /proc/cpuinfo spells them.
X86_BASELINE = ("avx", "avx2", "fma", "f16c", "bmi2")
#: Set to 1 to skip the check (a build of your own for another baseline).
SKIP_ENV = "TETHER_SKIP_CPU_CHECK"


@dataclass(frozen=True)
class CpuCheck:
    """The verdict: `ok`, the machine, the baseline asked for and what the CPU lacks of it."""

    ok: bool
    machine: str
    baseline: tuple[str, ...]
    missing: tuple[str, ...]
    message: str


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags, or None where the system does not say (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def check_cpu(flags: set[str] | None = None, machine: str | None = None) -> CpuCheck:
    """Check the CPU against the shipped build's baseline (x86-64 only; others pass)."""
    machine = machine or platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        return CpuCheck(True, machine, (), (), f"{machine}: built for the generic baseline")
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return CpuCheck(True, machine, X86_BASELINE, (),
                        "CPU flags unknown (no /proc/cpuinfo): not checked")
    missing = tuple(f for f in X86_BASELINE if f not in flags)
    if not missing:
        return CpuCheck(True, machine, X86_BASELINE, (),
                        f"CPU has the local model's baseline ({', '.join(X86_BASELINE)})")
    return CpuCheck(
        False, machine, X86_BASELINE, missing,
        f"this CPU lacks {', '.join(m.upper() for m in missing)}, which the local model's "
        f"llama.cpp build needs (baseline: x86-64 with {', '.join(X86_BASELINE).upper()}); "
        "use a remote model (OpenAIChatModel, AnthropicModel), or rebuild llama-cpp-python "
        f"for this CPU and set {SKIP_ENV}=1",
    )


def require_cpu() -> None:
    """Raise `ModelUnavailableError` with a one-line reason rather than let llama.cpp SIGILL."""
    if os.environ.get(SKIP_ENV) == "1":
        return
    verdict = check_cpu()
    if not verdict.ok:
        raise ModelUnavailableError(verdict.message)


#: Instructions outside the x86-64 AVX2 baseline, as objdump prints them: AMX tiles, AVX-512
#: (zmm registers, opmask registers) and VNNI dot products.
OUTSIDE_BASELINE = {
    "AMX": re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tilerelease|"
                      r"tilezero|tdpb[su][su]d|tdpbf16ps|tdpfp16ps)\b"),
    "AVX-512": re.compile(r"%zmm\d|\{%k[1-7]\}"),
    "VNNI": re.compile(r"\bvpdp(bu|ws)sds?\b"),
}


def scan_binary(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """Count instructions outside the baseline in a shared library (None without objdump).

    A static check, so that a build made for the wrong CPU is caught where it is made rather than
    by a SIGILL on somebody else's machine."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return None
    counts = dict.fromkeys(OUTSIDE_BASELINE, 0)
    with subprocess.Popen([objdump, "-d", "--no-show-raw-insn", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "\t" not in line:
                continue
            for name, pattern in OUTSIDE_BASELINE.items():
                if pattern.search(line):
                    counts[name] += 1
    return counts


def llama_libraries() -> list[Path]:
    """The native libraries of the installed llama-cpp-python (found without importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    libs: list[Path] = []
    for location in spec.submodule_search_locations:
        libs += sorted(p for p in Path(location).glob("lib/*.so*")
                       if p.is_file() and not p.is_symlink())
    return libs


def local_model_report(scan: bool = False) -> dict[str, object]:
    """`tether doctor`'s local-model section: will the embedded model run on this machine?

    `scan=True` also disassembles the installed native libraries (a few seconds) and counts
    instructions outside the baseline."""
    verdict = check_cpu()
    report: dict[str, object] = {
        "machine": verdict.machine,
        "baseline": list(verdict.baseline),
        "cpu_ok": verdict.ok,
        "missing": list(verdict.missing),
        "message": verdict.message,
    }
    try:
        report["llama_cpp"] = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        report["llama_cpp"] = None
        report["fix"] = "pip install 'tether[local]' (or make setup)"
    if scan and report["llama_cpp"]:
        libs = {p.name: scan_binary(p) for p in llama_libraries()}
        report["build_scan"] = libs
        report["build_ok"] = all(c is None or not any(c.values()) for c in libs.values())
    return report
