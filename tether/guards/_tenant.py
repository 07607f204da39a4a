"""`TenantDays`: each tenant's budget for the current UTC day, shared by all its runs here.

One per `Guards` object (so per worker process): an effect reserves its share before it starts
(`reserve`, check and charge at once), so the tenant's runs executing here at the same time —
and the branches of a `ctx.gather` — cannot all pass the same check. The store's usage counters
hold every worker's committed usage; they are re-read when a run starts and at most every
`usage_refresh_s`, so what other workers spent since is the only thing a check can miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig
from tether.guards.budget import Ledger, effect_usage, utc_day_at

if TYPE_CHECKING:
    from tether.runtime import Context


@dataclass
class TenantDay:
    ledger: Ledger
    day: str
    synced_at: float = 0.0


def store_key(store: Any) -> str:
    return str(getattr(store, "url", None) or id(store))


class TenantDays:
    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        # (store, tenant) -> today's ledger
        self._days: dict[tuple[str, str], TenantDay] = {}

    def ledger(self, ctx: Context, *, now: float | None = None,
               refresh: bool = False) -> Ledger | None:
        """Today's ledger of the run's tenant (None without tenant limits).

        Its spend is the larger of two lower bounds of the truth: what this process charged
        (every live effect of the tenant's runs here, at once) and the store's usage counters
        (every worker's committed usage), re-read when a run starts and every
        `usage_refresh_s`. Replayed effects are never charged to it: the counters hold them."""
        limits = self.config.tenant_limits.get(ctx.tenant)
        if limits is None:
            return None
        now = ctx.store.now() if now is None else now  # every host counts in the same day
        day = utc_day_at(now)
        key = (store_key(ctx.store), ctx.tenant)
        td = self._days.get(key)
        if td is None or td.day != day:
            td = TenantDay(Ledger(limits, scope=f"tenant {ctx.tenant} (today)"), day)
            self._days[key] = td
            refresh = True
        if refresh or now - td.synced_at >= self.config.usage_refresh_s:
            td.ledger.catch_up(ctx.store.get_usage(ctx.tenant, day))
            td.synced_at = now
        return td.ledger

    def reserve(self, ctx: Context, kind: str, now: float) -> Ledger | None:
        """Take one effect of `kind` from today's ledger of the run's tenant (None without
        tenant limits); raises `BudgetExceeded` when it has no room."""
        tenant = self.ledger(ctx, now=now)
        if tenant is not None:
            tenant.reserve(kind)
        return tenant

    def charge_live(self, ctx: Context, kind: str, tokens_in: int, tokens_out: int,
                    cost_usd: float, *, reserved: bool = False) -> None:
        """Tenant-day accounting of one live effect: this process's ledger (its counters unless
        `reserve` took them already), then the store's counters (read before the increment is
        submitted, so it is never counted twice)."""
        now = ctx.store.now()
        tenant = self.ledger(ctx, now=now)
        if tenant is not None:
            if not reserved:
                tenant.charge_effect(kind)
            if tokens_in or tokens_out or cost_usd:
                tenant.charge_usage(tokens_in, tokens_out, cost_usd)
        if self.config.record_usage:
            ctx.add_usage(effect_usage(kind, tokens_in, tokens_out, cost_usd),
                          day=utc_day_at(now))
