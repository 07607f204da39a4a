"""What every backend provides, and the per-sandbox handle they return."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tether.sandbox._types import Limits
from tether.sandbox._workspace import Staging

STUB_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/workspace",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "MPLCONFIGDIR": "/tmp",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class Started:
    """A sandbox process blocked on its stub, waiting for exactly one job."""

    backend: str
    proc: subprocess.Popen[bytes]
    staging: Staging
    limits: Limits
    python_bin: str
    kill: Callable[[], None]
    cleanup: Callable[[], dict[str, Any]]
    enforced: dict[str, str] = field(default_factory=dict)
    wall_cpu_limit: bool = False  # CPU time enforced by wall clock (gVisor)
    cwd: str = "/workspace"  # the workspace as the sandboxed program sees it
    tmp: str = "/tmp/.tether"  # where the stub writes the program text
    pooled: bool = False
    ready: bool = False  # the READY marker was already consumed (by the pool)
    #: gVisor: stdout/stderr go to files here (host path, sandbox path), not to pipes
    output_dir: tuple[str, str] | None = None


class Backend(ABC):
    name: str

    @abstractmethod
    def check(self) -> None:
        """Raise ``SandboxUnavailable`` (with the fix) if this backend cannot run here."""

    @abstractmethod
    def enforced(self, limits: Limits) -> dict[str, str]:
        """Which limits this backend enforces on this host, and by what mechanism."""

    @abstractmethod
    def start(self, limits: Limits) -> Started:
        """Start a fresh sandbox with a fresh staging workspace; its stub waits for a job."""
