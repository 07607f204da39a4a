"""Ephemeral sandboxes for agent-written code (bubblewrap by default, gVisor for more isolation).

Each exec runs in a fresh sandbox that is destroyed afterwards; a run's files persist between
execs as content-addressed artifacts (see ``exec_effect``). Start with :class:`Sandbox` or, inside
an agent, ``ctx.exec(...)``.
"""

from tether.sandbox._doctor import doctor
from tether.sandbox._registry import BACKENDS, default_backend_name, get_backend
from tether.sandbox._sandbox import ExecOutput, Sandbox, shared_sandbox
from tether.sandbox._types import (
    ExecRequest,
    ExecResult,
    FileChanges,
    Language,
    Limits,
    SandboxError,
    SandboxUnavailable,
)

__all__ = [
    "BACKENDS",
    "ExecOutput",
    "ExecRequest",
    "ExecResult",
    "FileChanges",
    "Language",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "default_backend_name",
    "doctor",
    "get_backend",
    "shared_sandbox",
]
