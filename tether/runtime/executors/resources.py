"""What one execution of a step needs from the machine that runs it.

A step declares it (`ctx.step(..., resources=Resources(num_cpus=2, memory=4 << 30))`); the
journal records it with each attempt; an executor that schedules work (Ray) asks its cluster for
exactly that, and an in-process worker, which has nothing to reserve, ignores it. Keeping it a
plain value lets a retry policy derive the next attempt's needs from the last one's (more memory
after an out-of-memory kill) and lets replay compute the same thing from the journal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidInput


@dataclass(frozen=True)
class Resources:
    """CPUs, GPUs (fractions allowed, as Ray does), memory in bytes, and named custom
    resources of the cluster (e.g. `{"accelerator_type:A100": 1}`)."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None
    custom: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if value is not None and not _non_negative(value):
                raise InvalidInput(f"Resources({name}={value!r}): give a number >= 0 "
                                   f"(fractions share a {name[4:-1].upper()}), or leave it out")
        if self.memory is not None and (
                not isinstance(self.memory, int) or isinstance(self.memory, bool)
                or self.memory <= 0):
            raise InvalidInput(f"Resources(memory={self.memory!r}): give whole bytes > 0, "
                               "e.g. memory=2 << 30 for 2 GiB")
        for key, amount in self.custom.items():
            if not isinstance(key, str) or not key or not _non_negative(amount):
                raise InvalidInput(f"Resources(custom={self.custom!r}): map resource names to "
                                   "numbers >= 0")

    def with_memory(self, memory: int) -> Resources:
        return replace(self, memory=memory)

    def to_json(self) -> dict[str, Any]:
        """The journal's form: only what was asked for."""
        out: dict[str, Any] = {}
        if self.num_cpus is not None:
            out["num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            out["num_gpus"] = self.num_gpus
        if self.memory is not None:
            out["memory"] = self.memory
        if self.custom:
            out["custom"] = dict(self.custom)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Resources:
        if not isinstance(data, dict):
            raise InvalidInput(f"journaled resources must be an object, got {data!r}")
        return cls(num_cpus=data.get("num_cpus"), num_gpus=data.get("num_gpus"),
                   memory=data.get("memory"), custom=dict(data.get("custom") or {}))


def _non_negative(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)
