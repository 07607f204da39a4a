"""``unsafe-local``: runs the code as a plain host subprocess. For development only.

No isolation at all (only rlimits). It exists so contributors without bubblewrap can try things;
it is used only when named explicitly and is never a fallback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tether.sandbox import _paths
from tether.sandbox._backend import STUB_ENV, Backend, Started
from tether.sandbox._limits import make_preexec
from tether.sandbox._process import kill_group, spawn
from tether.sandbox._types import Limits
from tether.sandbox._workspace import Staging

STUB_SOURCE = Path(__file__).with_name("_stub.py").read_text()


class UnsafeLocalBackend(Backend):
    name = "unsafe-local"

    def check(self) -> None:
        return None

    def python(self) -> str:
        p = _paths.env_python(_paths.python_env())
        return str(p) if p.exists() else sys.executable

    def enforced(self, limits: Limits) -> dict[str, str]:
        return {
            "isolation": "NONE: unsafe-local runs code as a host process (development only)",
            "cpu_seconds": f"{limits.cpu_seconds} (rlimit RLIMIT_CPU)",
            "file_size_bytes": f"{limits.file_size_bytes} (rlimit RLIMIT_FSIZE)",
            "network": "NOT restricted",
        }

    def start(self, limits: Limits) -> Started:
        staging = Staging(limits)
        tmp = tempfile.mkdtemp(prefix="tether-unsafe-")
        if os.geteuid() == 0:
            os.chown(tmp, 65534, 65534)
        env = dict(STUB_ENV)
        proc = spawn(
            [self.python(), "-c", STUB_SOURCE],
            preexec=make_preexec(limits, None, None, drop_to_nobody=os.geteuid() == 0),
            env=env,
            cwd=str(staging.path),
        )

        def cleanup() -> dict[str, Any]:
            kill_group(proc)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            return {}

        return Started(
            backend=self.name,
            proc=proc,
            staging=staging,
            limits=limits,
            python_bin=self.python(),
            kill=lambda: kill_group(proc),
            cleanup=cleanup,
            enforced=self.enforced(limits),
            cwd=str(staging.path),
            tmp=tmp + "/job",
        )
