"""The deployment-wide guard configuration (`GuardConfig`) and where the vault key comes from.

Kept apart from the gateway so that what a deployment *sets* reads in one place, separate from
how the guards act on it. Public through `tether.guards` (and `tether.guards.gateway`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.guards._pii_release import check_pii_grants
from tether.guards.approvals import KeyRegistry
from tether.guards.budget import BudgetLimits
from tether.guards.embedding import Embedder
from tether.guards.errors import VaultError
from tether.guards.loops import LoopConfig
from tether.guards.pii import PiiPattern, decode_key
from tether.guards.policy import Policy, PolicySet, load_policy
from tether.guards.retry import RetryPolicy


@dataclass
class GuardConfig:
    """Everything the guards of one deployment need. Per-agent/tenant policies: `policies`."""

    policy: Policy | PolicySet | None = None  # None = deny every tool (deny by default)
    tenant_policies: dict[str, Policy] = field(default_factory=dict)
    # the default; a run's own options["budget"] wins
    run_limits: BudgetLimits = field(default_factory=BudgetLimits)
    tenant_limits: dict[str, BudgetLimits] = field(default_factory=dict)  # per tenant, UTC day
    loops: LoopConfig = field(default_factory=LoopConfig)
    embedder: Embedder | None = None  # None disables the semantic-loop signal
    pii: bool = True
    pii_patterns: Sequence[PiiPattern] = ()
    vault_key: bytes | None = None  # default: TETHER_VAULT_KEY
    approvers: KeyRegistry = field(default_factory=KeyRegistry)
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    retry: RetryPolicy | None = None  # retries of failed tool calls made through Guards.tool
    record_usage: bool = True  # add every tenant's live spend to the store's usage counters
    usage_refresh_s: float = 1.0  # re-read a limited tenant's counters (other workers) this often

    def __post_init__(self) -> None:
        if self.tenant_limits and not self.record_usage:
            raise ValueError("tenant_limits need record_usage=True (they are kept in the store's "
                             "usage counters)")
        # a rule's `pii:` must name kinds the masker produces (a typo would grant nothing)
        check_pii_grants([self.policy, *self.tenant_policies.values()],
                         [p.label for p in self.pii_patterns])

    @classmethod
    def from_policy_file(cls, path: str | Path, **kwargs: Any) -> GuardConfig:
        return cls(policy=load_policy(path), **kwargs)


def vault_key(config: GuardConfig) -> bytes:
    if config.vault_key is not None:
        return config.vault_key
    raw = os.environ.get("TETHER_VAULT_KEY")
    if not raw:
        raise VaultError("no vault key: set TETHER_VAULT_KEY or GuardConfig.vault_key")
    return decode_key(raw, "TETHER_VAULT_KEY")
