"""The durable core: journal, run context, replay and workers."""

from ._health import WorkerHealth
from ._retention import Deleted
from .client import AmbiguousRunId, NoRunWithPrefix, Tether, new_run_id
from .committer import GroupCommitter
from .context import ChildHandle, Context
from .errors import (
    ActivityError,
    AgentNotFound,
    ChildFailed,
    DepthLimitExceeded,
    InDoubt,
    InvalidInput,
    NonDeterminismError,
    NotInDoubt,
    NotSerializable,
    RunFinished,
    RunHalted,
    RunNotDeletable,
    RunNotFound,
    ShortCircuit,
    SignalTimeout,
    Suspend,
    TetherError,
)
from .executors import (
    Executor,
    RayExecutor,
    Resources,
    StepLost,
    StepOutOfMemory,
    StepUnschedulable,
)
from .interceptors import BaseInterceptor, Effect, Interceptor
from .queues import WorkerQueue
from .refs import agent_ref, guards_ref, resolve_agent, resolve_guards
from .retry import RetryPlan, RunNotRetryable, StepRetry, grow_memory
from .worker import Worker

__all__ = [
    "ActivityError",
    "AgentNotFound",
    "AmbiguousRunId",
    "BaseInterceptor",
    "ChildFailed",
    "ChildHandle",
    "Context",
    "Deleted",
    "DepthLimitExceeded",
    "Effect",
    "Executor",
    "GroupCommitter",
    "InDoubt",
    "Interceptor",
    "InvalidInput",
    "NoRunWithPrefix",
    "NonDeterminismError",
    "NotInDoubt",
    "NotSerializable",
    "RayExecutor",
    "Resources",
    "RetryPlan",
    "RunFinished",
    "RunHalted",
    "RunNotDeletable",
    "RunNotFound",
    "RunNotRetryable",
    "ShortCircuit",
    "SignalTimeout",
    "StepLost",
    "StepOutOfMemory",
    "StepRetry",
    "StepUnschedulable",
    "Suspend",
    "Tether",
    "TetherError",
    "Worker",
    "WorkerHealth",
    "WorkerQueue",
    "agent_ref",
    "grow_memory",
    "guards_ref",
    "new_run_id",
    "resolve_agent",
    "resolve_guards",
]
