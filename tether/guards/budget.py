"""Budget accounting (pure objects; persistence is the runtime's/store's job).

A `Ledger` holds limits and spend for one scope (a run, or a tenant-day). Before every effect the
runtime calls `check(kind)`: counters that the effect would increment (steps, tool calls, child
runs) must have room for one more; measured quantities (tokens, cost, wall time) must not already
be at or over the limit, since they are only known after the call. A child run's ledger has the
parent's as `parent`: every charge is also made upstream and every check also looks upstream, so
children draw from the parent's budget (and the tenant's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from tether.guards.errors import BudgetExceeded

EffectKind = Literal["step", "model", "tool", "child", "exec", "other"]

# counters incremented by one effect of each kind (besides `steps`, which every effect takes)
_COUNTS: dict[str, tuple[str, ...]] = {
    "model": (),
    "tool": ("tool_calls",),
    "child": ("child_runs",),
}
_MEASURED = ("tokens_in", "tokens_out", "cost_usd", "wall_time_s")
# what a tenant-day is metered in (the store's `usage` counters); wall time is per run only
USAGE_METRICS = ("steps", "tokens_in", "tokens_out", "cost_usd", "tool_calls", "child_runs")


@dataclass(frozen=True)
class BudgetLimits:
    """None = unlimited. Counts are integers; cost in USD; wall time in seconds."""

    steps: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    wall_time_s: float | None = None
    tool_calls: int | None = None
    child_runs: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
                raise ValueError(f"budget limit {f.name} must be a non-negative number, got {v!r}")

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BudgetLimits:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown budget(s) {sorted(unknown)}; expected {sorted(known)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Spend:
    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    wall_time_s: float = 0.0
    tool_calls: int = 0
    child_runs: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spend:
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}})


@dataclass
class Ledger:
    limits: BudgetLimits
    spend: Spend = field(default_factory=Spend)
    scope: str = "run"
    parent: Ledger | None = None
    started_at: float | None = None  # run start (journaled clock), for wall time

    def chain(self) -> list[Ledger]:
        out: list[Ledger] = []
        cur: Ledger | None = self
        while cur is not None:
            out.append(cur)
            cur = cur.parent
        return out

    # ----------------------------------------------------------------- checks
    def check(self, kind: EffectKind | str = "step", now: float | None = None) -> None:
        """Raise BudgetExceeded if the next effect of `kind` does not fit (any scope upward)."""
        if now is not None:
            self.observe_time(now)
        for ledger in self.chain():
            ledger._check_one(kind)

    def _check_one(self, kind: str) -> None:
        lim, sp = self.limits, self.spend
        for name in ("steps", *_COUNTS.get(kind, ())):
            limit = getattr(lim, name)
            if limit is not None and getattr(sp, name) + 1 > limit:
                raise BudgetExceeded(name, limit, getattr(sp, name), self.scope)
        for name in _MEASURED:
            limit = getattr(lim, name)
            if limit is not None and getattr(sp, name) >= limit:
                raise BudgetExceeded(name, limit, getattr(sp, name), self.scope)

    # ---------------------------------------------------------------- charges
    def charge_effect(self, kind: EffectKind | str) -> None:
        """Count one effect (after `check` passed, before it runs: it was attempted)."""
        for ledger in self.chain():
            ledger.spend.steps += 1
            for name in _COUNTS.get(kind, ()):
                setattr(ledger.spend, name, getattr(ledger.spend, name) + 1)

    def charge_usage(self, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0) -> None:
        if min(tokens_in, tokens_out, cost_usd) < 0:
            raise ValueError("usage cannot be negative")
        for ledger in self.chain():
            ledger.spend.tokens_in += int(tokens_in)
            ledger.spend.tokens_out += int(tokens_out)
            ledger.spend.cost_usd = round(ledger.spend.cost_usd + float(cost_usd), 10)

    def catch_up(self, usage: dict[str, float]) -> None:
        """Raise this ledger's spend to at least `usage` (the store's counters, which include
        other workers' spend). Both are lower bounds of the truth, so their maximum is too:
        nothing is counted twice, and what this process charged but has not committed yet is
        not lost."""
        sp = self.spend
        for name in USAGE_METRICS:
            stored = usage.get(name)
            if stored is None:
                continue
            value: float = round(stored, 10) if name == "cost_usd" else round(stored)
            if value > getattr(sp, name):
                setattr(sp, name, value)

    def observe_time(self, now: float) -> None:
        """Wall time is measured per scope from its own start; a parent's clock keeps running."""
        for ledger in self.chain():
            if ledger.started_at is not None:
                ledger.spend.wall_time_s = max(ledger.spend.wall_time_s, now - ledger.started_at)

    def child(self, limits: BudgetLimits | None = None, scope: str = "child run",
              started_at: float | None = None) -> Ledger:
        """A child's own limits (optional) nested inside this ledger's."""
        return Ledger(limits or BudgetLimits(), scope=scope, parent=self, started_at=started_at)

    def remaining(self) -> dict[str, float]:
        """Smallest room left over the chain, per budget that has a limit somewhere."""
        out: dict[str, float] = {}
        for ledger in self.chain():
            for f in fields(BudgetLimits):
                limit = getattr(ledger.limits, f.name)
                if limit is not None:
                    room = limit - getattr(ledger.spend, f.name)
                    out[f.name] = min(out.get(f.name, room), room)
        return out


def effect_usage(kind: EffectKind | str, tokens_in: int = 0, tokens_out: int = 0,
                 cost_usd: float = 0.0) -> dict[str, float]:
    """The usage counters one effect adds: the same quantities `charge_effect` +
    `charge_usage` add to a ledger, as the store's `add_usage` wants them."""
    out: dict[str, float] = {"steps": 1}
    for name in _COUNTS.get(kind, ()):
        out[name] = 1
    if tokens_in:
        out["tokens_in"] = int(tokens_in)
    if tokens_out:
        out["tokens_out"] = int(tokens_out)
    if cost_usd:
        out["cost_usd"] = float(cost_usd)
    return out


def utc_day(when: datetime | None = None) -> str:
    """The UTC calendar day ("YYYY-MM-DD") tenant budgets and usage counters are kept per."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
