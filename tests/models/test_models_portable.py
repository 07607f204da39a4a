"""The embedded model runs on any x86-64 CPU with AVX2, and says so when it cannot.

The build is checked statically (no instruction outside the baseline in the shipped libraries),
the CPU is checked before llama.cpp is loaded (one clear line, never a SIGILL), and the model is
first exercised in a child process so that a native crash fails one test, not the suite.
"""

from __future__ import annotations

import json
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.native_probe import crash_reason, run_probe
from tether.cli import app
from tether.models import SMALL_WEIGHTS, ModelUnavailableError, _cpu, check_cpu
from tether.models.local import LocalModel

X86 = platform.machine() in ("x86_64", "AMD64")


def test_cpu_without_avx2_is_one_clear_line() -> None:
    verdict = check_cpu({"sse2", "avx", "fma"}, machine="x86_64")
    assert not verdict.ok
    assert verdict.missing == ("avx2", "f16c", "bmi2")
    assert "\n" not in verdict.message
    assert "lacks AVX2, F16C, BMI2" in verdict.message
    assert "remote model" in verdict.message and _cpu.SKIP_ENV in verdict.message


def test_cpu_with_the_baseline_passes_and_other_machines_are_not_judged() -> None:
    assert check_cpu(set(_cpu.X86_BASELINE) | {"sse4_2"}, machine="x86_64").ok
    assert check_cpu(set(), machine="aarch64").ok


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2\n\nprocessor\t: 1\n")
    assert _cpu.cpu_flags(info) == {"fpu", "sse2", "avx", "avx2"}
    assert _cpu.cpu_flags(tmp_path / "missing") is None


def test_local_model_refuses_before_loading_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cpu, "cpu_flags", lambda *a: {"sse2", "avx", "fma", "f16c", "bmi2"})
    monkeypatch.setattr(_cpu.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv(_cpu.SKIP_ENV, raising=False)
    # a weights path that does not exist: reaching weight resolution would raise WeightsError
    model = LocalModel(SMALL_WEIGHTS, path="/nonexistent/model.gguf", allow_download=False)
    with pytest.raises(ModelUnavailableError, match="lacks AVX2"):
        model.load()
    monkeypatch.setenv(_cpu.SKIP_ENV, "1")  # a build of one's own: the check steps aside
    with pytest.raises(Exception) as info:
        model.load()
    assert not isinstance(info.value, ModelUnavailableError)


def test_doctor_reports_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = CliRunner().invoke(app, ["doctor", "--json", "--no-smoke"])
    report = json.loads(ok.output)["local_model"]
    assert report["cpu_ok"] is True and report["llama_cpp"], report
    monkeypatch.setattr(_cpu, "cpu_flags", lambda *a: {"sse2", "avx"})
    monkeypatch.setattr(_cpu.platform, "machine", lambda: "x86_64")
    human = CliRunner().invoke(app, ["doctor", "--no-smoke"])
    assert "local model: CANNOT RUN" in human.output
    assert "lacks AVX2" in " ".join(human.output.split())


needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None or shutil.which("gcc") is None,
                                   reason="needs binutils and gcc (build-essential)")


@needs_objdump
@pytest.mark.skipif(not X86, reason="the x86-64 baseline")
def test_scanner_catches_avx512_and_amx(tmp_path: Path) -> None:
    """The build check can fail: code compiled for AVX-512 and AMX is counted."""
    src = tmp_path / "wide.c"
    src.write_text(
        "#include <immintrin.h>\n"
        "__m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }\n"
        "void tiles(void *cfg) { _tile_loadconfig(cfg); _tile_release(); }\n"
        "__m256 narrow(__m256 a, __m256 b) { return _mm256_fmadd_ps(a, b, a); }\n")
    lib = tmp_path / "libwide.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-mavx512f", "-mamx-tile", "-mfma",
                    str(src), "-o", str(lib)], check=True)
    counts = _cpu.scan_binary(lib)
    assert counts is not None and counts["AVX-512"] > 0 and counts["AMX"] > 0, counts
    narrow = tmp_path / "narrow.c"
    narrow.write_text("#include <immintrin.h>\n"
                      "__m256 f(__m256 a, __m256 b) { return _mm256_fmadd_ps(a, b, a); }\n")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-mavx2", "-mfma", str(narrow), "-o",
                    str(tmp_path / "libnarrow.so")], check=True)
    assert not any(_cpu.scan_binary(tmp_path / "libnarrow.so").values())  # type: ignore[union-attr]


@needs_objdump
@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="the x86-64 baseline")
def test_shipped_build_stays_within_the_baseline() -> None:
    pytest.importorskip("llama_cpp", reason="needs the tether[local] extra (make setup)")
    libs = _cpu.llama_libraries()
    assert any(p.name.startswith("libggml-cpu") for p in libs), libs
    found = {p.name: _cpu.scan_binary(p) for p in libs}
    outside = {name: {k: n for k, n in c.items() if n} for name, c in found.items() if c}
    assert not any(outside.values()), (
        f"instructions outside x86-64+AVX2 in the llama.cpp build: {outside}; rebuild with "
        "mk/llama_portable.sh (GGML_NATIVE=OFF)")


def test_a_native_crash_is_reported_by_its_signal() -> None:
    """What the probe says when its process dies: a real SIGILL, not a simulated exit code."""
    proc = subprocess.run([sys.executable, "-c",
                           f"import os; os.kill(os.getpid(), {int(signal.SIGILL)})"])
    reason = crash_reason(proc.returncode)
    assert reason is not None and "SIGILL" in reason and "CPU features" in reason
    assert crash_reason(0) is None and crash_reason(1) is None


@pytest.mark.slow
def test_local_model_decodes_in_a_subprocess() -> None:
    """Every other `model` test runs in-process only if this one did not die from a signal."""
    proc = run_probe()
    if proc is None:
        pytest.skip("needs the tether[local] extra (make setup installs it)")
    assert proc.returncode == 0, crash_reason(proc.returncode) or proc.stderr[-2000:]
    assert "probe ok" in proc.stdout
