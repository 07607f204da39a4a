"""The public entry point: run code or a command in a fresh sandbox, with a workspace."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tether.sandbox._fsafe import UnsafePath, check_relpath, delete_file, write_file
from tether.sandbox._pool import Pool
from tether.sandbox._registry import get_backend
from tether.sandbox._run import execute
from tether.sandbox._types import ExecRequest, ExecResult, Language, Limits
from tether.sandbox._workspace import load_dir


@dataclass
class ExecOutput:
    """An ``ExecResult`` plus the workspace after the exec (manifest and changed contents)."""

    result: ExecResult
    manifest: dict[str, str] = field(default_factory=dict)
    changed: dict[str, bytes] = field(default_factory=dict)


class Sandbox:
    """Runs each request in a fresh sandbox of one backend; optionally keeps a warm pool.

    ``backend`` None means ``TETHER_SANDBOX_BACKEND`` or bwrap. An unavailable backend raises
    ``SandboxUnavailable`` right here, with the fix: never a silent fallback.
    """

    def __init__(
        self, backend: str | None = None, *, limits: Limits | None = None, pool_size: int = 0
    ) -> None:
        self.backend = get_backend(backend)
        self.limits = limits or Limits()
        self.pool: Pool | None = (
            Pool(self.backend, self.limits, pool_size) if pool_size > 0 else None
        )

    @property
    def name(self) -> str:
        return self.backend.name

    def request(
        self,
        code: str | None = None,
        *,
        language: Language = "python",
        argv: list[str] | tuple[str, ...] | None = None,
        stdin: bytes | str = b"",
        timeout: float | None = None,
        limits: Limits | Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecRequest:
        lim = self.limits.merged(dict(limits) if isinstance(limits, Mapping) else limits)
        return ExecRequest(
            code=code,
            language=language,
            argv=tuple(argv) if argv is not None else None,
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            timeout=float(timeout) if timeout is not None else float(lim.cpu_seconds),
            limits=lim,
            env=tuple(sorted((env or {}).items())),
        )

    def run_request(self, req: ExecRequest, files: Mapping[str, bytes] | None = None) -> ExecOutput:
        for path in files or {}:
            check_relpath(path)
        started = None
        if self.pool is not None and req.limits == self.limits:
            started = self.pool.take()
        if started is None:
            started = self.backend.start(req.limits)
        try:
            result, collected = execute(started, req, dict(files or {}))
        finally:
            if started.pooled and self.pool is not None:
                self.pool.done()
        if collected is None:
            return ExecOutput(result)
        return ExecOutput(result, collected.manifest, collected.new_data)

    def run(
        self, code: str | None = None, *, files: Mapping[str, bytes] | None = None, **kw: object
    ) -> ExecOutput:
        """Blocking. ``kw`` as for :meth:`request`."""
        return self.run_request(self.request(code, **kw), files)  # type: ignore[arg-type]

    async def arun(
        self, code: str | None = None, *, files: Mapping[str, bytes] | None = None, **kw: object
    ) -> ExecOutput:
        req = self.request(code, **kw)  # type: ignore[arg-type]
        return await asyncio.to_thread(self.run_request, req, files)

    def run_in_dir(self, directory: Path, req: ExecRequest) -> ExecOutput:
        """Run with ``directory``'s files as the workspace and write the changes back to it.

        Writes are confined to ``directory``: symlinks there are neither followed nor replaced.
        """
        files = load_dir(directory, req.limits)
        out = self.run_request(req, files)
        refused: list[str] = []
        for rel, data in out.changed.items():
            try:
                write_file(str(directory), rel, data)
            except (UnsafePath, OSError) as e:
                refused.append(f"{rel}: not written back ({e})")
        for rel in out.result.files.deleted:
            try:
                delete_file(str(directory), rel)
            except (UnsafePath, OSError) as e:
                refused.append(f"{rel}: not deleted ({e})")
        if refused:
            prior = out.result.workspace_error
            out.result.workspace_error = "; ".join(([prior] if prior else []) + refused)
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


_shared: dict[str, Sandbox] = {}
_shared_lock = threading.Lock()


def shared_sandbox(backend: str | None = None) -> Sandbox:
    """One process-wide ``Sandbox`` per backend, with a pool of ``TETHER_SANDBOX_POOL``
    (default 2 for bwrap, 1 for gVisor, 0 for unsafe-local) pre-started sandboxes."""
    name = get_backend(backend).name
    with _shared_lock:
        sb = _shared.get(name)
        if sb is None:
            default = {"bwrap": 2, "gvisor": 1}.get(name, 0)
            size = int(os.environ.get("TETHER_SANDBOX_POOL", default))
            sb = _shared[name] = Sandbox(name, pool_size=size)
        return sb


@atexit.register
def _close_shared() -> None:
    for sb in list(_shared.values()):
        sb.close()
    _shared.clear()
