"""Tether: a durable, sandboxed, governed and observable runtime for LLM agents."""

from tether.runtime import (
    ActivityError,
    BaseInterceptor,
    ChildFailed,
    ChildHandle,
    Context,
    DepthLimitExceeded,
    Effect,
    InDoubt,
    Interceptor,
    InvalidInput,
    NonDeterminismError,
    RunHalted,
    RunNotFound,
    SignalTimeout,
    Tether,
    TetherError,
    Worker,
)
from tether.runtime.activity import activity
from tether.store import RunRecord, open_store

__version__ = "0.1.0"

__all__ = [
    "ActivityError",
    "BaseInterceptor",
    "ChildFailed",
    "ChildHandle",
    "Context",
    "DepthLimitExceeded",
    "Effect",
    "InDoubt",
    "Interceptor",
    "InvalidInput",
    "NonDeterminismError",
    "RunHalted",
    "RunNotFound",
    "RunRecord",
    "SignalTimeout",
    "Tether",
    "TetherError",
    "Worker",
    "__version__",
    "activity",
    "open_store",
]
