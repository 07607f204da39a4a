"""Per-sandbox cgroups: cgroup v2 if it offers the controllers, else writable v1 ones.

Detection is per controller (memory, pids, cpu accounting), because hybrid hosts mix: the v2
tree may exist with no controllers delegated while v1 hierarchies are writable. Whatever no
cgroup enforces falls back to rlimits (see ``_limits``), and ``tether doctor`` says which.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "tether-sandbox"


def _own_path(controller: str | None) -> str:
    """This process's cgroup path in the hierarchy of ``controller`` (None = v2 unified)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if controller is None and ctrls == "":
                return path
            if controller is not None and controller in ctrls.split(","):
                return path
    return "/"


def _writable_dir(p: Path) -> bool:
    return p.is_dir() and os.access(p, os.W_OK)


@dataclass(frozen=True)
class CgroupPlan:
    """Where each controller lives: ``v2`` base dir, or per-controller v1 base dirs."""

    v2_base: Path | None = None
    v2_controllers: frozenset[str] = frozenset()
    v1_bases: dict[str, Path] = field(default_factory=dict)

    def enforces(self, what: str) -> str | None:
        if what in self.v2_controllers:
            return "cgroup v2"
        if what in self.v1_bases:
            return "cgroup v1"
        return None


def _v2_mount() -> Path | None:
    if (ROOT / "cgroup.controllers").exists():
        return ROOT
    if (ROOT / "unified" / "cgroup.controllers").exists():
        return ROOT / "unified"
    return None


@lru_cache(maxsize=1)
def detect() -> CgroupPlan:
    v2_base: Path | None = None
    v2_ctrls: set[str] = set()
    mount = _v2_mount()
    if mount is not None:
        base = mount / _own_path(None).lstrip("/") / GROUP
        try:
            base.mkdir(exist_ok=True)
            avail = set((base / "cgroup.controllers").read_text().split())
            want = avail & {"memory", "pids", "cpu"}
            if want:
                with contextlib.suppress(OSError):
                    (base / "cgroup.subtree_control").write_text(
                        " ".join("+" + c for c in sorted(want))
                    )
                v2_ctrls = set((base / "cgroup.subtree_control").read_text().split()) & want
            if v2_ctrls:
                v2_base = base
        except OSError:
            pass
    v1: dict[str, Path] = {}
    for ctrl, fs in (("memory", "memory"), ("pids", "pids"), ("cpu", "cpuacct")):
        if ctrl in v2_ctrls:
            continue
        d = ROOT / fs
        if not (d / "cgroup.procs").exists():
            continue
        base = d / _own_path(fs).lstrip("/") / GROUP
        try:
            base.mkdir(exist_ok=True)
            probe = base / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
            v1[ctrl] = base
        except OSError:
            continue
    return CgroupPlan(v2_base, frozenset(v2_ctrls), v1)


class Cgroup:
    """One sandbox's cgroup(s). Create before start; the child joins in its pre-exec hook."""

    def __init__(self, plan: CgroupPlan, memory_bytes: int, pids: int) -> None:
        self.plan = plan
        self.name = uuid.uuid4().hex[:16]
        self.dirs: dict[str, Path] = {}
        if plan.v2_base is not None:
            d = plan.v2_base / self.name
            d.mkdir()
            self.dirs["v2"] = d
            if "memory" in plan.v2_controllers:
                (d / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (d / "memory.swap.max").write_text("0")
            if "pids" in plan.v2_controllers:
                (d / "pids.max").write_text(str(pids))
        for ctrl, base in plan.v1_bases.items():
            d = base / self.name
            d.mkdir()
            self.dirs[ctrl] = d
            if ctrl == "memory":
                (d / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (d / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (d / "memory.swappiness").write_text("0")
            elif ctrl == "pids":
                (d / "pids.max").write_text(str(pids))

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def join_self(self) -> None:
        """Called in the forked child before exec (async-signal-safe enough: plain writes)."""
        pid = str(os.getpid()).encode()
        for f in self.procs_files():
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        out: set[int] = set()
        for f in self.procs_files():
            with contextlib.suppress(OSError):
                out.update(int(x) for x in Path(f).read_text().split())
        return out

    def kill_all(self) -> None:
        v2 = self.dirs.get("v2")
        if v2 is not None and (v2 / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (v2 / "cgroup.kill").write_text("1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)

    def stats(self) -> dict[str, int | bool]:
        out: dict[str, int | bool] = {}
        mem = self.dirs.get("memory")
        v2 = self.dirs.get("v2")
        try:
            if mem is not None:
                out["memory_peak_bytes"] = int((mem / "memory.max_usage_in_bytes").read_text())
                oom = (mem / "memory.oom_control").read_text()
                out["oom_killed"] = "oom_kill 0" not in oom and "oom_kill " in oom
            elif v2 is not None and "memory" in self.plan.v2_controllers:
                peak = v2 / "memory.peak"
                if peak.exists():
                    out["memory_peak_bytes"] = int(peak.read_text())
                events = (v2 / "memory.events").read_text()
                out["oom_killed"] = "oom_kill 0" not in events
            cpu = self.dirs.get("cpu")
            if cpu is not None:
                out["cpu_ns"] = int((cpu / "cpuacct.usage").read_text())
            pids = self.dirs.get("pids") or (
                v2 if v2 is not None and "pids" in self.plan.v2_controllers else None
            )
            if pids is not None and (pids / "pids.events").exists():
                out["pids_limit_hit"] = "max 0" not in (pids / "pids.events").read_text()
        except (OSError, ValueError):
            pass
        return out

    def destroy(self) -> None:
        self.kill_all()
        self.remove()

    def remove(self) -> None:
        """Remove the (empty) groups; retries while the kernel finishes reaping."""
        for d in self.dirs.values():
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
