"""``tether doctor`` for sandboxes: which backends run here and which limits each enforces."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tether.sandbox import _paths
from tether.sandbox._cgroups import detect
from tether.sandbox._registry import BACKENDS, get_backend
from tether.sandbox._run import execute
from tether.sandbox._types import ExecRequest, Limits, SandboxError, SandboxUnavailable


def host_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "root": os.geteuid() == 0,
        "sandbox_home": str(_paths.sandbox_home()),
        "python_env": str(_paths.python_env()),
        "seccomp_filter": str(_paths.seccomp_filter()),
        "kvm": Path("/dev/kvm").exists(),
    }
    if os.geteuid() == 0:
        plan = detect()
        facts["cgroups"] = {
            c: plan.enforces(c) or "none (rlimit fallback)" for c in ("memory", "pids", "cpu")
        }
    else:
        facts["cgroups"] = "not used (not root): rlimits only"
    return facts


def backend_report(name: str, smoke: bool = True) -> dict[str, Any]:
    report: dict[str, Any] = {"backend": name}
    try:
        backend = get_backend(name)
    except SandboxUnavailable as e:
        report.update(available=False, reason=e.reason, fix=e.fix)
        return report
    limits = Limits()
    report.update(available=True, limits_enforced=backend.enforced(limits))
    if name == "gvisor":
        report["platform"] = os.environ.get("TETHER_GVISOR_PLATFORM", "ptrace") + (
            " (KVM present but not used: --platform=kvm hangs on nested VMs)"
            if Path("/dev/kvm").exists() else ""
        )
    if smoke:
        t = time.perf_counter()
        try:
            result, _ = execute(backend.start(limits), ExecRequest(code="print(6 * 7)", timeout=30))
            ok = result.exit_code == 0 and result.stdout.strip() == "42"
            report["smoke_test"] = {
                "ok": ok,
                "ms": round((time.perf_counter() - t) * 1000, 1),
                **({} if ok else {"stderr": result.stderr[-500:], "error": result.error}),
            }
        except (SandboxError, OSError) as e:
            report["smoke_test"] = {"ok": False, "error": str(e)}
    return report


def doctor(smoke: bool = True) -> dict[str, Any]:
    return {
        "host": host_facts(),
        "backends": [backend_report(n, smoke and n != "unsafe-local")
                     for n in BACKENDS if n != "unsafe-local"],
        "unsafe-local": "available only when named explicitly; provides no isolation",
    }
