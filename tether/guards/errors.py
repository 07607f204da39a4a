"""Exceptions raised by the guards.

Each carries enough structured data to be journaled as-is: a halt reason must say *which* guard,
*which* limit and *how much* was spent, because an operator reads it without the code at hand.
"""

from __future__ import annotations

from typing import Any


class GuardError(Exception):
    """Base class: something a guard refused or could not do."""


class PolicyLoadError(GuardError):
    """An invalid policy file. `line` is 1-based (None when the file is not even YAML)."""

    def __init__(self, reason: str, line: int | None = None, source: str = "<policy>") -> None:
        self.reason = reason
        self.line = line
        self.source = source
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class HaltRun(GuardError):
    """The run must stop in status `halted`. `details` is JSON-able and goes into the journal."""

    def __init__(self, reason: str, guard: str, details: dict[str, Any] | None = None) -> None:
        self.reason = reason
        self.guard = guard
        self.details = details or {}
        super().__init__(reason)


class BudgetExceeded(HaltRun):
    """A budget has no room for the next effect."""

    def __init__(self, budget: str, limit: float, spent: float, scope: str = "run") -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.scope = scope
        super().__init__(
            f"{scope} budget '{budget}' exhausted: limit={_fmt(limit)} spent={_fmt(spent)}",
            guard="budget",
            details={"budget": budget, "limit": limit, "spent": spent, "scope": scope},
        )


class LoopHalt(HaltRun):
    """A loop persisted after the intervention."""

    def __init__(self, kind: str, evidence: str) -> None:
        self.kind = kind
        super().__init__(
            f"loop detected ({kind}) and persisted after intervention: {evidence}",
            guard="loop",
            details={"kind": kind, "evidence": evidence},
        )


class ActionDenied(GuardError):
    """The policy gateway denied an action. The agent sees `reason`; it never executes."""

    def __init__(self, tool: str, rule: str, reason: str) -> None:
        self.tool = tool
        self.rule = rule
        self.reason = reason
        super().__init__(f"action '{tool}' denied by rule '{rule}': {reason}")


class ToolUnavailable(GuardError):
    """The tool's circuit breaker is open; the agent is told to do without it for now."""

    def __init__(self, tool: str, retry_after_s: float, failures: int) -> None:
        self.tool = tool
        self.retry_after_s = retry_after_s
        self.failures = failures
        super().__init__(
            f"tool '{tool}' is unavailable (circuit open after {failures} consecutive failures; "
            f"retry in {retry_after_s:.1f}s) — continue without it or choose another tool"
        )


class ApprovalError(GuardError):
    """A decision on an approval was rejected (unknown id, bad signature, replay, ...)."""


class KeyFormatError(ApprovalError):
    """A public or private key could not be parsed."""


class VaultError(GuardError):
    """The PII vault could not be decrypted (wrong key, tampered blob) or is misconfigured."""


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"
