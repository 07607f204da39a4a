"""Worker queues: which runs a worker may claim, so a pool of workers can be kept for some tenants
or some agents (hosts with a GPU, a tenant's own machines) while other workers serve the rest.

A queue selects whole run trees. A child run carries its parent's tenant (unless spawned into
another one), and it is served by the workers that serve its root's agent whatever agent the
child itself runs: a pool that serves an agent serves every run that agent's trees start, so a
child is never left waiting for a pool nobody deployed, and a pool kept for tenant A never
executes tenant B's children. The store applies the queue in its claim (`Tx.claim`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .refs import portable_ref
from .tenants import TENANT_NAME, TENANT_RULE


@dataclass(frozen=True, slots=True)
class WorkerQueue:
    """The runs a worker serves: those of `tenants` (None: every tenant) whose tree's root runs
    one of `agents` (None: every agent). Agent references are normalised as runs record them
    (a file reference made absolute), so `agents/triage.py:main` matches the runs it queued."""

    tenants: frozenset[str] | None = None
    agents: frozenset[str] | None = None

    @classmethod
    def of(cls, tenants: Iterable[str] | str | None = None,
           agents: Iterable[str | Callable[..., Any]] | str | Callable[..., Any] | None = None,
           ) -> WorkerQueue:
        """Build a queue from what a user gives, refusing values that would silently serve
        nothing (an empty list, an empty name) or that no run can carry."""
        return cls(_tenants(tenants), _agents(agents))

    @property
    def everything(self) -> bool:
        return self.tenants is None and self.agents is None

    def describe(self) -> str:
        """For a worker's start-up line: `every run`, or what it is limited to."""
        if self.everything:
            return "every run"
        parts = []
        if self.tenants is not None:
            parts.append("tenant " + ", ".join(sorted(self.tenants)))
        if self.agents is not None:
            parts.append("runs started by agent " + ", ".join(sorted(self.agents)))
        return "; ".join(parts)


def _listed(value: Any, what: str, example: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str) or callable(value):
        return [value]
    items = list(value)
    if not items:
        raise ValueError(
            f"{what}=[] serves no run at all; list the {what} this worker serves (e.g. "
            f"{what}=[{example!r}]) or pass None to serve every one")
    return items


def _tenants(given: Iterable[str] | str | None) -> frozenset[str] | None:
    items = _listed(given, "tenants", "acme")
    if items is None:
        return None
    for tenant in items:
        if not isinstance(tenant, str) or not TENANT_NAME.fullmatch(tenant):
            raise ValueError(
                f"tenant {tenant!r} in the worker's queue: a tenant is {TENANT_RULE}, as runs "
                "are submitted with (tenant='acme')")
    return frozenset(items)


def _agents(given: Any) -> frozenset[str] | None:
    items = _listed(given, "agents", "agents.triage:main")
    if items is None:
        return None
    refs = set()
    for agent in items:
        ref = portable_ref(agent)  # a callable: its module:qualname (or refuses a local one)
        target, sep, name = ref.rpartition(":")
        if not sep or not target.strip() or not name.strip() or ref != ref.strip():
            raise ValueError(
                f"agent {agent!r} in the worker's queue: expected MODULE:FUNCTION or "
                "path/to/file.py:FUNCTION, the agent reference runs record (see `tether runs`)")
        refs.add(ref)
    return frozenset(refs)
