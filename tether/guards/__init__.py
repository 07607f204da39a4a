"""Guards: the model proposes, these decide.

Budgets, loop detection, retries and circuit breakers, fork-bomb limits, the policy gateway
(deny by default), human and two-person approval, and PII masking. Plug them into a runtime with
`Guards(config, tools).interceptors()` and let the agent loop call `Guards.model` / `Guards.tool`
with whatever the model proposed. See docs/guards.md.
"""

from tether.guards.approvals import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalState,
    KeyRegistry,
    action_digest,
    generate_keypair,
    load_key_registry,
    load_private_key,
    load_public_key,
    sign_decision,
)
from tether.guards.budget import BudgetLimits, Ledger, Spend
from tether.guards.embedding import Embedder, MiniLMEmbedder, default_embedder
from tether.guards.errors import (
    ActionDenied,
    ApprovalError,
    BudgetExceeded,
    GuardError,
    HaltRun,
    KeyFormatError,
    LoopHalt,
    PolicyLoadError,
    ToolUnavailable,
    VaultError,
)
from tether.guards.gateway import GuardConfig, GuardInterceptor, Guards, spend_from_events
from tether.guards.loops import Intervention, LoopConfig, LoopDetector
from tether.guards.pii import PiiMasker, PiiPattern, Vault
from tether.guards.policy import (
    Policy,
    PolicyDecision,
    PolicySet,
    ToolInfo,
    load_policy,
    loads_policy,
)
from tether.guards.retry import BreakerBoard, CircuitBreaker, RetryPolicy

__all__ = [
    "ActionDenied",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalState",
    "BreakerBoard",
    "BudgetExceeded",
    "BudgetLimits",
    "CircuitBreaker",
    "Embedder",
    "GuardConfig",
    "GuardError",
    "GuardInterceptor",
    "Guards",
    "HaltRun",
    "Intervention",
    "KeyFormatError",
    "KeyRegistry",
    "Ledger",
    "LoopConfig",
    "LoopDetector",
    "LoopHalt",
    "MiniLMEmbedder",
    "PiiMasker",
    "PiiPattern",
    "Policy",
    "PolicyDecision",
    "PolicyLoadError",
    "PolicySet",
    "RetryPolicy",
    "Spend",
    "ToolInfo",
    "ToolUnavailable",
    "Vault",
    "VaultError",
    "action_digest",
    "default_embedder",
    "generate_keypair",
    "load_key_registry",
    "load_policy",
    "load_private_key",
    "load_public_key",
    "loads_policy",
    "sign_decision",
    "spend_from_events",
]
