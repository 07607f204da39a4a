"""Where a step's function executes: the worker's own process by default, or a Ray cluster for
steps that declare the resources they need (`ctx.step(..., resources=Resources(...))` with
`Worker(..., executor=RayExecutor(...))`)."""

from .base import OUT_OF_MEMORY_TYPES, Executor, StepLost, StepOutOfMemory, StepUnschedulable
from .ray import RayExecutor, RayNotInstalled, RayUnavailable
from .resources import Resources

__all__ = [
    "OUT_OF_MEMORY_TYPES",
    "Executor",
    "RayExecutor",
    "RayNotInstalled",
    "RayUnavailable",
    "Resources",
    "StepLost",
    "StepOutOfMemory",
    "StepUnschedulable",
]
