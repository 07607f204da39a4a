"""The default backend: bubblewrap namespaces + seccomp + cgroups/rlimits + uid 65534.

As root we drop to the real uid 65534 *before* bwrap (so the sandbox's uid maps to an
unprivileged host uid, never to root), join a per-sandbox cgroup and set rlimits in the pre-exec
hook. bwrap reads the ``--seccomp`` fd to its end, so each sandbox opens the filter afresh.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from tether.sandbox import _paths
from tether.sandbox import _reaper as reaper
from tether.sandbox._backend import STUB_ENV, Backend, Started
from tether.sandbox._cgroups import Cgroup, detect
from tether.sandbox._limits import describe, make_preexec
from tether.sandbox._process import kill_group, spawn
from tether.sandbox._rootfs import ensure_rootfs
from tether.sandbox._types import Limits, SandboxUnavailable
from tether.sandbox._workspace import Staging

STUB_SOURCE = Path(__file__).with_name("_stub.py").read_text()


class BwrapBackend(Backend):
    name = "bwrap"

    def __init__(self) -> None:
        self.bwrap = shutil.which("bwrap")

    def check(self) -> None:
        if not self.bwrap:
            raise SandboxUnavailable(
                "bwrap", "bubblewrap is not installed", "apt-get install bubblewrap"
            )
        if not _paths.seccomp_filter().exists():
            raise SandboxUnavailable(
                "bwrap",
                f"seccomp filter {_paths.seccomp_filter()} is missing",
                "apt-get install python3-seccomp && make setup "
                "(or: python -m tether.sandbox._setup)",
            )
        env = _paths.python_env()
        if not _paths.env_python(env).exists():
            raise SandboxUnavailable(
                "bwrap",
                f"sandbox Python environment {env} is missing",
                "make setup (or set TETHER_SANDBOX_ENV to your own read-only environment)",
            )
        max_ns = Path("/proc/sys/user/max_user_namespaces")
        if max_ns.exists() and max_ns.read_text().strip() == "0":
            raise SandboxUnavailable(
                "bwrap", "user namespaces are disabled", "sysctl -w user.max_user_namespaces=15000"
            )

    def plan(self) -> Any:
        return detect() if os.geteuid() == 0 else None

    def enforced(self, limits: Limits) -> dict[str, str]:
        out = describe(limits, self.plan())
        out["network"] = "none (empty network namespace)"
        out["seccomp"] = str(_paths.seccomp_filter())
        out["uid"] = "65534 (host uid 65534)" if os.geteuid() == 0 else (
            f"65534 inside (host uid {os.getuid()}, not root: no cgroups)"
        )
        out["tmp_bytes"] = f"{limits.tmp_bytes} (tmpfs size)"
        out["workspace_bytes"] = (
            f"{limits.workspace_bytes} (tmpfs size)"
            if os.geteuid() == 0
            else "not enforced (needs root for a tmpfs; RLIMIT_FSIZE caps each file)"
        )
        return out

    def argv(self, limits: Limits, staging: Staging, seccomp_fd: int) -> list[str]:
        env = _paths.python_env()
        assert self.bwrap
        args = [
            self.bwrap,
            "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
            "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr",
        ]
        for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                             ("lib64", "usr/lib64")):
            args += ["--symlink", target, "/" + name]
        args += ["--ro-bind", str(_paths.rootfs() / "etc"), "/etc"]
        if Path("/etc/alternatives").is_dir():
            args += ["--ro-bind", "/etc/alternatives", "/etc/alternatives"]
        args += [
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(min(limits.tmp_bytes, 16 * 1024 * 1024)),
            "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--bind", str(staging.path), "/workspace",
            "--ro-bind", str(env), str(env),
        ]
        for extra in _paths.env_base_dirs(env):
            args += ["--ro-bind", str(extra), str(extra)]
        args += ["--remount-ro", "/", "--chdir", "/workspace", "--clearenv"]
        for k, v in STUB_ENV.items():
            args += ["--setenv", k, v]
        args += ["--seccomp", str(seccomp_fd), "--"]
        args += [str(_paths.env_python(env)), "-c", STUB_SOURCE]
        return args

    def start(self, limits: Limits) -> Started:
        self.check()
        ensure_rootfs(_paths.rootfs())
        root = os.geteuid() == 0
        plan = detect() if root else None
        staging = Staging(limits)
        cgroup: Cgroup | None = None
        try:
            if plan is not None and (plan.v1_bases or plan.v2_base):
                cgroup = Cgroup(plan, limits.memory_bytes, limits.pids)
            fd = os.open(_paths.seccomp_filter(), os.O_RDONLY)
            try:
                proc = spawn(
                    self.argv(limits, staging, fd),
                    preexec=make_preexec(limits, plan, cgroup, drop_to_nobody=root),
                    pass_fds=(fd,),
                    cwd="/",
                )
            finally:
                os.close(fd)
        except BaseException:
            if cgroup is not None:
                cgroup.destroy()
            staging.destroy()
            raise

        def kill() -> None:
            kill_group(proc)
            if cgroup is not None:
                cgroup.kill_all()

        cleaned: list[bool] = []

        def cleanup() -> dict[str, Any]:
            stats: dict[str, Any] = {}
            kill_group(proc)
            if cgroup is not None and not cleaned:
                stats = dict(cgroup.stats())
                cgroup.kill_all()
                reaper.defer(cgroup.remove)
            cleaned.append(True)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            return stats

        return Started(
            backend=self.name,
            proc=proc,
            staging=staging,
            limits=limits,
            python_bin=str(_paths.env_python(_paths.python_env())),
            kill=kill,
            cleanup=cleanup,
            enforced=self.enforced(limits),
        )
