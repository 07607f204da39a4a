"""The pre-exec hook shared by the process backends: cgroup join, rlimits, then drop to 65534."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

from tether.sandbox._cgroups import Cgroup, CgroupPlan
from tether.sandbox._rootfs import SANDBOX_GID, SANDBOX_UID
from tether.sandbox._types import Limits


def rlimits(limits: Limits, plan: CgroupPlan | None) -> list[tuple[int, int, int]]:
    out = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if plan is None or plan.enforces("pids") is None:
        out.append((resource.RLIMIT_NPROC, limits.pids, limits.pids))
    if plan is None or plan.enforces("memory") is None:
        # address space is a coarse proxy for memory; leave room for mapped-but-unused libraries
        vm = max(limits.memory_bytes * 2, 2 * 1024**3)
        out.append((resource.RLIMIT_AS, vm, vm))
    return out


def describe(limits: Limits, plan: CgroupPlan | None) -> dict[str, str]:
    mem = plan.enforces("memory") if plan else None
    pids = plan.enforces("pids") if plan else None
    return {
        "cpu_seconds": f"{limits.cpu_seconds} (rlimit RLIMIT_CPU)",
        "memory_bytes": f"{limits.memory_bytes} ({mem})"
        if mem
        else f"{limits.memory_bytes} (rlimit RLIMIT_AS, address space, approximate)",
        "pids": f"{limits.pids} ({pids})"
        if pids
        else f"{limits.pids} (rlimit RLIMIT_NPROC, per uid)",
        "file_size_bytes": f"{limits.file_size_bytes} (rlimit RLIMIT_FSIZE)",
        "open_files": f"{limits.open_files} (rlimit RLIMIT_NOFILE)",
        "core_dumps": "disabled (rlimit RLIMIT_CORE=0)",
    }


def make_preexec(
    limits: Limits, plan: CgroupPlan | None, cgroup: Cgroup | None, drop_to_nobody: bool
) -> Callable[[], None]:
    rl = rlimits(limits, plan)

    def preexec() -> None:
        if cgroup is not None:
            cgroup.join_self()
        for res, soft, hard in rl:
            resource.setrlimit(res, (soft, hard))
        if drop_to_nobody:
            os.setgroups([])
            os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
            os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)

    return preexec
