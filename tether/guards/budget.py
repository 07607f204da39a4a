"""Budget accounting (pure objects; persistence is the runtime's/store's job).

A `Ledger` holds limits and spend for one scope (a tenant-day, or a scope in the unit tests).
Before an effect it *reserves* what the effect will take (`reserve`: check and charge in one go,
with nothing in between for a concurrent caller to slip through), and `release` gives it back if
the effect is then refused. Counters that an effect increments (steps, tool calls, child runs)
must have room for one more; measured quantities (tokens, cost, wall time) must not already be at
or over the limit, since they are only known after the call (and are charged then). A ledger's
`parent` is checked and charged too.

A run's budgets are `BudgetScope`s: every run that has limits bounds the spend of its whole
subtree (itself and its descendants). `RunBudget` is what one run knows of them: its scopes (root
first), what it spent itself (rebuilt from the journal on every replay) and the reservations its
effects hold. The reservations themselves are made against the store's per-scope counters by the
guards' interceptor, so runs in other processes see them (`tether.guards._spend`).
"""

from __future__ import annotations

from collections.abc import Mapping
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
_INTEGER = frozenset({"steps", "tokens_in", "tokens_out", "tool_calls", "child_runs"})
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
    def from_json(cls, data: Mapping[str, Any] | None) -> BudgetLimits:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown budget(s) {sorted(unknown)}; expected {sorted(known)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def narrowed(self, room: Mapping[str, float]) -> BudgetLimits:
        """These limits, lowered to `room` wherever that is smaller (or this one unlimited):
        a child's budget inside what its parent has left."""
        out: dict[str, Any] = {}
        for f in fields(self):
            own = getattr(self, f.name)
            if f.name in room:
                left = max(0.0, float(room[f.name]))
                if f.name in _INTEGER:
                    left = float(int(left))
                own = left if own is None else min(own, left)
            if own is not None:
                out[f.name] = int(own) if f.name in _INTEGER else own
        return BudgetLimits(**out)


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
    def from_json(cls, data: Mapping[str, Any]) -> Spend:
        """From `to_json`, or from the store's counters (REAL columns): counts come back as
        integers, so messages say `spent=5`, not `spent=5.0`."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: (round(v) if k in _INTEGER else round(float(v), 10))
                                  for k, v in data.items() if k in known}
        return cls(**values)

    def counters(self) -> dict[str, float]:
        """As the store's counters hold it (wall time is measured, never stored)."""
        return {k: v for k, v in self.to_json().items() if k != "wall_time_s"}

    def add(self, amounts: Mapping[str, float], sign: int = 1) -> None:
        """Add (or with `sign=-1` take back) the amounts of `effect_usage`."""
        for name, amount in amounts.items():
            value = getattr(self, name) + sign * amount
            if name in _INTEGER:
                value = max(0, round(value))
            setattr(self, name, round(value, 10) if name == "cost_usd" else value)


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
        exceeded = self.room_for(kind)
        if exceeded is not None:
            raise exceeded

    def room_for(self, kind: EffectKind | str) -> BudgetExceeded | None:
        """Why this scope alone (not its parents) has no room for an effect of `kind`, or None."""
        lim, sp = self.limits, self.spend
        for name in ("steps", *_COUNTS.get(kind, ())):
            limit = getattr(lim, name)
            if limit is not None and getattr(sp, name) + 1 > limit:
                return BudgetExceeded(name, limit, getattr(sp, name), self.scope)
        for name in _MEASURED:
            limit = getattr(lim, name)
            if limit is not None and getattr(sp, name) >= limit:
                return BudgetExceeded(name, limit, getattr(sp, name), self.scope)
        return None

    def reserve(self, kind: EffectKind | str, now: float | None = None) -> None:
        """`check` and `charge_effect` at once: concurrent effects (a `ctx.gather`, the runs of
        a tenant in one worker) cannot all pass a check made before any of them is charged."""
        self.check(kind, now=now)
        self.charge_effect(kind)

    def release(self, kind: EffectKind | str) -> None:
        """Give back what `reserve` took, for an effect refused before it started."""
        for ledger in self.chain():
            ledger.spend.add(effect_usage(kind), sign=-1)

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


@dataclass(frozen=True)
class BudgetScope:
    """A run with limits: they bound the spend of the run and all its descendants."""

    run_id: str
    limits: BudgetLimits
    started_at: float  # the run's creation: its wall-time clock
    label: str = "run"  # "run" (a tree's root) or "child run", as messages name it

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started_at)


@dataclass
class RunBudget:
    """One run's view of its budgets.

    `scopes`: every run from the root down to this one that has limits (root first: the
    outermost exhausted budget is the one reported). `spent`: what this run's own effects took,
    replayed ones included. `holds`: reservations of this run's live effects, by journal key,
    until the interceptor's `after` settles them. `mode`: how reservations are made — "off"
    (no limits anywhere), "local" (a root that has not spawned: no other run can spend from its
    budget, so `totals`, counted from its journal when the run's state was built and kept in
    this process, are exact and the store is not asked) or "store" (a checked reservation in
    the store's counters per effect; `totals` are then what the last one saw). `held`: in
    "local" mode, the keys the journal shows started (an effect run again after a crash was
    counted when it first ran). `seeds`: counters for scopes the store does not know yet."""

    scopes: list[BudgetScope]
    mode: Literal["off", "local", "store"] = "off"
    spent: Spend = field(default_factory=Spend)
    totals: dict[str, Spend] = field(default_factory=dict)
    seeds: dict[str, dict[str, float]] = field(default_factory=dict)
    holds: dict[str, Any] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)

    def add(self, amounts: Mapping[str, float], sign: int = 1) -> None:
        """Charge (or give back) `amounts` in every scope's totals ("local" mode)."""
        for scope in self.scopes:
            self.totals.setdefault(scope.run_id, Spend()).add(amounts, sign)

    def check_time(self, now: float) -> None:
        """Wall time is measured per scope from its run's creation, never stored."""
        for scope in self.scopes:
            limit = scope.limits.wall_time_s
            if limit is not None and scope.elapsed(now) >= limit:
                raise BudgetExceeded("wall_time_s", limit, round(scope.elapsed(now), 3),
                                     scope.label)

    def first_exceeded(self, totals: Mapping[str, Spend], kind: EffectKind | str
                       ) -> BudgetExceeded | None:
        """The outermost scope without room for an effect of `kind`, given their counters."""
        for scope in self.scopes:
            spend = totals.get(scope.run_id) or Spend()
            exceeded = Ledger(scope.limits, spend, scope=scope.label).room_for(kind)
            if exceeded is not None:
                return exceeded
        return None

    def room(self, totals: Mapping[str, Spend], now: float) -> dict[str, float]:
        """What is left in every scope, per limited budget (the smallest over the scopes)."""
        out: dict[str, float] = {}
        for scope in self.scopes:
            spend = totals.get(scope.run_id) or Spend()
            for f in fields(BudgetLimits):
                limit = getattr(scope.limits, f.name)
                if limit is None:
                    continue
                used = scope.elapsed(now) if f.name == "wall_time_s" else getattr(spend, f.name)
                out[f.name] = min(out.get(f.name, limit - used), limit - used)
        return out


def child_budget(requested: Any) -> BudgetLimits | None:
    """A child's budget as `ctx.spawn(..., options={"budget": ...})` gave it, validated."""
    if requested is None:
        return None
    if not isinstance(requested, Mapping):
        raise ValueError(
            f"ctx.spawn(options={{'budget': ...}}): a child's budget must be a mapping of limits "
            f"such as {{'tool_calls': 5}}, got {type(requested).__name__} {requested!r}")
    try:
        return BudgetLimits.from_json(requested)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ctx.spawn(options={{'budget': {dict(requested)!r}}}): {exc}; a "
                         "child's budget may only narrow its parent's") from None


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


_SECONDS_A_DAY = 86400  # POSIX time has no leap seconds: every UTC day is this long
_EDGE = 0.001  # near midnight, the exact conversion (it rounds to the microsecond) decides
# (start, end, day): the timestamps of [start, end) all fall on `day`
_today: tuple[float, float, str] = (0.0, 0.0, "")


def utc_day_at(timestamp: float) -> str:
    """`utc_day(datetime.fromtimestamp(timestamp, UTC))`, without the datetime for every effect:
    the day of the last timestamp seen is remembered (a tuple replaced whole, so threads can
    share it)."""
    global _today
    start, end, day = _today
    if start <= timestamp < end:
        return day
    day = utc_day(datetime.fromtimestamp(timestamp, UTC))
    midnight = timestamp // _SECONDS_A_DAY * _SECONDS_A_DAY
    if midnight + _EDGE <= timestamp < midnight + _SECONDS_A_DAY - _EDGE:
        _today = (midnight + _EDGE, midnight + _SECONDS_A_DAY - _EDGE, day)
    return day
