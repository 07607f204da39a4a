"""The guards' mutable state: per run (`RunGuardState`) and per tenant and UTC day.

A run's state lives in `ctx.scratch` (the runtime rebuilds it on every replay, so nothing here is
persisted); the tenant-day ledgers are shared by every run of one `Guards` in this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.guards.budget import Ledger
from tether.guards.loops import Intervention, LoopDetector
from tether.guards.pii import PiiMasker, Vault
from tether.guards.policy import Policy, PolicySet


@dataclass
class RunGuardState:
    ledger: Ledger
    detector: LoopDetector
    vault: Vault
    masker: PiiMasker
    policy: Policy | PolicySet | None
    pending: Intervention | None = None
    approvals: int = 0
    flags: list[dict[str, Any]] = field(default_factory=list)
    temperature_bump: float = 0.0
    sealed_entries: int = 0
    retrying: bool = False  # a retry is not a loop: the detector skips it


@dataclass
class TenantDay:
    ledger: Ledger
    day: str
    synced_at: float = 0.0


def store_key(store: Any) -> str:
    return str(getattr(store, "url", None) or id(store))
