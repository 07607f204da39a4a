"""Where the sandbox's host-side pieces live (runtime env, seccomp filter, rootfs skeleton, state).

``TETHER_SANDBOX_HOME`` overrides the home; ``TETHER_SANDBOX_ENV`` points to a user's own
read-only Python environment (a venv or a prefix with ``bin/python3``).
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_HOME = Path("/opt/tether")


def sandbox_home() -> Path:
    env = os.environ.get("TETHER_SANDBOX_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0 or SYSTEM_HOME.exists():
        return SYSTEM_HOME
    return Path.home() / ".local" / "share" / "tether"


def python_env() -> Path:
    env = os.environ.get("TETHER_SANDBOX_ENV")
    return Path(env) if env else sandbox_home() / "sandbox-env"


def env_python(env: Path) -> Path:
    for name in ("python3", "python"):
        p = env / "bin" / name
        if p.exists():
            return p
    return env / "bin" / "python3"


def env_base_dirs(env: Path) -> list[Path]:
    """Directories besides ``/usr`` that the env's interpreter needs (a venv's ``home``)."""
    cfg = env / "pyvenv.cfg"
    extra: list[Path] = []
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                home = Path(value.strip()).parent
                if not str(home).startswith("/usr"):
                    extra.append(home)
    return extra


def seccomp_filter() -> Path:
    return sandbox_home() / "seccomp.bpf"


def rootfs() -> Path:
    return sandbox_home() / "rootfs"


def state_dir() -> Path:
    """Per-host scratch: staging workspaces and runsc state. Must be traversable by uid 65534."""
    env = os.environ.get("TETHER_SANDBOX_STATE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/tether-sandbox")
    return Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / f"tether-sandbox-{os.getuid()}"
