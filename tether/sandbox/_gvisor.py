"""The gVisor backend: ``runsc run`` on a generated OCI bundle (never ``runsc do``).

The root is the read-only skeleton; /usr and the Python environment are read-only binds;
/workspace is the exec's staging dir; user 65534 with no capabilities and ``noNewPrivileges``;
network none; memory and pids limits go to runsc's cgroups (pids >= 256: gVisor's own threads
count). This runsc ignores RLIMIT_CPU, so CPU time is enforced by wall clock. ``--platform=kvm``
hangs on nested VMs, so ptrace is the default (``TETHER_GVISOR_PLATFORM`` overrides).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tether.sandbox import _paths
from tether.sandbox import _reaper as reaper
from tether.sandbox._backend import STUB_ENV, Backend, Started
from tether.sandbox._process import dies_with_this_process, kill_group, spawn
from tether.sandbox._rootfs import SANDBOX_GID, SANDBOX_UID, ensure_rootfs, mount_point_for
from tether.sandbox._seccomp_gen import CLONE_NS_FLAGS, DENY_EPERM
from tether.sandbox._types import Limits, SandboxUnavailable
from tether.sandbox._workspace import GC_INTERVAL, Staging, owner_alive

STUB_SOURCE = Path(__file__).with_name("_stub.py").read_text()
MIN_PIDS = 256
_collected = [-GC_INTERVAL]
# This runsc truncates large writes to host pipes (short writes many programs ignore), so the
# job's stdout/stderr go to files on a host tmpfs mounted here and are read after the exit.
IO_DIR = "/run/tether-io"


def oci_seccomp() -> dict[str, Any]:
    """The bwrap filter's deny list as OCI seccomp, applied by the sentry (``--oci-seccomp``).

    The sentry already implements these in user space, away from the host kernel; denying them
    too keeps the two backends' behaviour the same for programs.
    """
    rules: list[dict[str, Any]] = [
        {"names": list(DENY_EPERM), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ]
    for bit in range(32):
        flag = 1 << bit
        if flag & CLONE_NS_FLAGS:
            rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                    "op": "SCMP_CMP_MASKED_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": rules}


def platform() -> str:
    return os.environ.get("TETHER_GVISOR_PLATFORM", "ptrace")


class GVisorBackend(Backend):
    name = "gvisor"

    def __init__(self) -> None:
        self.runsc = shutil.which("runsc")

    def check(self) -> None:
        if not self.runsc:
            raise SandboxUnavailable("gvisor", "runsc is not installed", "apt-get install runsc")
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "gvisor", "runsc run needs root here", "run the worker as root, or use bwrap"
            )
        env = _paths.python_env()
        if not _paths.env_python(env).exists():
            raise SandboxUnavailable(
                "gvisor", f"sandbox Python environment {env} is missing", "make setup"
            )

    def enforced(self, limits: Limits) -> dict[str, str]:
        return {
            "cpu_seconds": f"{limits.cpu_seconds} (wall clock: this runsc ignores RLIMIT_CPU)",
            "memory_bytes": f"{limits.memory_bytes} (runsc cgroup)",
            "pids": f"{max(limits.pids, MIN_PIDS)} (runsc cgroup, includes gVisor's threads)",
            "file_size_bytes": f"{limits.file_size_bytes} (rlimit RLIMIT_FSIZE in the sentry)",
            "open_files": f"{limits.open_files} (rlimit RLIMIT_NOFILE in the sentry)",
            "network": "none (runsc --network=none)",
            "syscalls": f"gVisor sentry (user-space kernel), platform {platform()}",
            "uid": "65534, no capabilities, noNewPrivileges",
            "tmp_bytes": f"{limits.tmp_bytes} (tmpfs size)",
            "workspace_bytes": f"{limits.workspace_bytes} (host tmpfs size)",
        }

    def state_root(self) -> Path:
        p = _paths.state_dir() / "runsc"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def bundle(
        self, limits: Limits, staging: Staging, bundle_dir: Path, io: Staging | None = None
    ) -> dict[str, Any]:
        env = _paths.python_env()
        root = _paths.rootfs()
        mounts: list[dict[str, Any]] = [
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", f"size={limits.tmp_bytes}"]},
            {"destination": "/workspace", "type": "bind", "source": str(staging.path),
             "options": ["rbind", "rw", "nosuid", "nodev"]},
            {"destination": str(env), "type": "bind", "source": str(env),
             "options": ["rbind", "ro"]},
        ]
        if io is not None:
            mount_point_for(root, IO_DIR)
            mounts.append({"destination": IO_DIR, "type": "bind", "source": str(io.path),
                           "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]})
        mount_point_for(root, str(env))
        for extra in _paths.env_base_dirs(env):
            mount_point_for(root, str(extra))
            mounts.append({"destination": str(extra), "type": "bind", "source": str(extra),
                           "options": ["rbind", "ro"]})
        if Path("/etc/alternatives").is_dir():
            mounts.append({"destination": "/etc/alternatives", "type": "bind",
                           "source": "/etc/alternatives", "options": ["rbind", "ro"]})
        no_caps: list[str] = []
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": SANDBOX_UID, "gid": SANDBOX_GID, "additionalGids": []},
                "args": [str(_paths.env_python(env)), "-c", STUB_SOURCE],
                "env": [f"{k}={v}" for k, v in STUB_ENV.items()],
                "cwd": "/workspace",
                "capabilities": {k: no_caps for k in
                                 ("bounding", "effective", "inheritable", "permitted", "ambient")},
                "noNewPrivileges": True,
                "rlimits": [
                    {"type": "RLIMIT_NOFILE", "hard": limits.open_files, "soft": limits.open_files},
                    {"type": "RLIMIT_FSIZE", "hard": limits.file_size_bytes,
                     "soft": limits.file_size_bytes},
                    {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
                ],
            },
            "root": {"path": str(root), "readonly": True},
            "hostname": "sandbox",
            "mounts": mounts,
            "linux": {
                "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                "cgroupsPath": f"/tether-sandbox/{bundle_dir.name}",
                "seccomp": oci_seccomp(),
                "resources": {
                    "memory": {"limit": limits.memory_bytes, "swap": limits.memory_bytes},
                    "pids": {"limit": max(limits.pids, MIN_PIDS)},
                },
            },
        }

    def collect_stale(self) -> list[str]:
        """Delete containers and bundles of dead workers (a SIGKILLed worker cannot)."""
        removed = []
        bundles = self.state_root() / "bundles"
        names = {p.name for p in bundles.glob("*")} if bundles.exists() else set()
        names |= {p.name.split("_sandbox:")[0] for p in self.state_root().glob("*_sandbox:*")}
        for cid in sorted(names):
            if owner_alive(cid):
                continue
            subprocess.run(self._runsc("delete", "--force", cid), capture_output=True,
                           timeout=30, check=False)
            for leftover in self.state_root().glob(f"*{cid}*"):
                if leftover.is_file():
                    leftover.unlink(missing_ok=True)
            shutil.rmtree(bundles / cid, ignore_errors=True)
            removed.append(cid)
        return removed

    def _runsc(self, *args: str) -> list[str]:
        assert self.runsc
        return [self.runsc, "--root", str(self.state_root()), "--network=none",
                "--oci-seccomp", f"--platform={platform()}", *args]

    def start(self, limits: Limits) -> Started:
        self.check()
        ensure_rootfs(_paths.rootfs())
        staging = Staging(limits)
        io = Staging(limits, size=2 * limits.file_size_bytes + 1024 * 1024, kind="io")
        if time.monotonic() - _collected[0] >= GC_INTERVAL:
            _collected[0] = time.monotonic()
            reaper.defer(self.collect_stale)
        cid = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        bundle_dir = self.state_root() / "bundles" / cid
        try:
            bundle_dir.mkdir(parents=True)
            (bundle_dir / "config.json").write_text(
                json.dumps(self.bundle(limits, staging, bundle_dir, io))
            )
            proc = spawn(self._runsc("run", "--bundle", str(bundle_dir), cid),
                         preexec=dies_with_this_process(), cwd=str(bundle_dir))
        except BaseException:
            staging.destroy()
            io.destroy()
            shutil.rmtree(bundle_dir, ignore_errors=True)
            raise

        def kill() -> None:
            subprocess.run(self._runsc("kill", "--all", cid, "KILL"), capture_output=True,
                           timeout=10, check=False)
            kill_group(proc)

        def cleanup() -> dict[str, Any]:
            kill_group(proc)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            # ``runsc run`` deletes its container on a normal exit; after a kill it may not.
            if (self.state_root() / f"{cid}_sandbox:{cid}.state").exists() or any(
                self.state_root().glob(f"*{cid}*")
            ):
                subprocess.run(self._runsc("delete", "--force", cid), capture_output=True,
                               timeout=30, check=False)
            for leftover in self.state_root().glob(f"*{cid}*.lock"):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(bundle_dir, ignore_errors=True)
            io.destroy()
            return {}

        return Started(
            backend=self.name,
            proc=proc,
            staging=staging,
            limits=limits,
            python_bin=str(_paths.env_python(_paths.python_env())),
            kill=kill,
            cleanup=cleanup,
            enforced=self.enforced(limits),
            wall_cpu_limit=True,
            output_dir=(str(io.path), IO_DIR),
        )
