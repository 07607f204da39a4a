"""Value types shared by every backend: what to run, within which limits, what came back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Language = Literal["python", "bash"]

MiB = 1024 * 1024


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the code inside it); the result would be meaningless."""


class SandboxUnavailable(SandboxError):
    """A backend was asked for but cannot run here; ``fix`` says how to make it available.

    Raised instead of ever falling back to a weaker (or no) sandbox.
    """

    def __init__(self, backend: str, reason: str, fix: str) -> None:
        super().__init__(f"sandbox backend {backend!r} is unavailable: {reason}. Fix: {fix}")
        self.backend = backend
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class Limits:
    """Per-exec resource limits. Defaults suit data analysis with pandas on a small worker."""

    cpu_seconds: int = 30
    memory_bytes: int = 1024 * MiB
    pids: int = 256  # gVisor's own threads count against this, so it must stay >= 256 there
    file_size_bytes: int = 128 * MiB
    open_files: int = 256
    tmp_bytes: int = 64 * MiB
    workspace_bytes: int = 256 * MiB
    workspace_files: int = 10_000
    stdout_bytes: int = 256 * 1024
    stderr_bytes: int = 256 * 1024

    def merged(self, overrides: dict[str, Any] | Limits | None) -> Limits:
        if overrides is None:
            return self
        if isinstance(overrides, Limits):
            return overrides
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown sandbox limits: {sorted(unknown)}")
        for k, v in overrides.items():
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"sandbox limit {k} must be a positive integer, not {v!r}")
        return replace(self, **overrides)


@dataclass(frozen=True)
class ExecRequest:
    """One piece of work for a fresh sandbox: ``code`` in ``language``, or an ``argv`` command."""

    code: str | None = None
    language: Language = "python"
    argv: tuple[str, ...] | None = None
    stdin: bytes = b""
    timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.code is None) == (self.argv is None):
            raise ValueError("give exactly one of code= or argv=")
        if self.language not in ("python", "bash"):
            raise ValueError(f"language must be 'python' or 'bash', not {self.language!r}")
        if self.argv is not None and not self.argv:
            raise ValueError("argv must not be empty")
        if not self.timeout > 0:
            raise ValueError("timeout must be > 0 seconds")


@dataclass
class FileChanges:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class ExecResult:
    """What an exec produced. ``to_dict`` is the JSON form journaled by ``ctx.exec``."""

    backend: str
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_total_bytes: int
    stderr_total_bytes: int
    duration_ms: float
    timed_out: bool = False
    signal: int | None = None
    oom_killed: bool = False
    error: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    limits_enforced: dict[str, str] = field(default_factory=dict)
    files: FileChanges = field(default_factory=FileChanges)
    workspace_error: str | None = None
    pooled: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
