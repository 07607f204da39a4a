"""`TenantDays`: each tenant's budget for the current UTC day, shared by all its runs here.

One per `Guards` object (so per worker process): an effect reserves its share before it starts
(`reserve`, check and charge at once), so the tenant's runs executing here at the same time —
and the branches of a `ctx.gather` — cannot all pass the same check. The store's usage counters
hold every worker's committed usage; they are re-read when a run starts and at most every
`usage_refresh_s`, so what other workers spent since is the only thing a check can miss.

A run is bound by, and charged to, the day of every tenant of its tree (its own and those of the
runs it descends from, `_state._tree_tenants`): `ctx.spawn(..., tenant="other")` would otherwise
let a tenant at its cap keep spending through children charged to a tenant with room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.guards._config import GuardConfig
from tether.guards.budget import Ledger, effect_usage, utc_day_at
from tether.guards.errors import BudgetExceeded

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

    def ledger(self, ctx: Context, *, now: float | None = None, refresh: bool = False,
               tenant: str | None = None) -> Ledger | None:
        """Today's ledger of `tenant` (by default the run's; None without tenant limits).

        Its spend is the larger of two lower bounds of the truth: what this process charged
        (every live effect of the tenant's runs here, at once) and the store's usage counters
        (every worker's committed usage), re-read when a run starts and every
        `usage_refresh_s`. Replayed effects are never charged to it: the counters hold them."""
        tenant = ctx.tenant if tenant is None else tenant
        limits = self.config.tenant_limits.get(tenant)
        if limits is None:
            return None
        now = ctx.store.now() if now is None else now  # every host counts in the same day
        day = utc_day_at(now)
        key = (store_key(ctx.store), tenant)
        td = self._days.get(key)
        if td is None or td.day != day:
            td = TenantDay(Ledger(limits, scope=f"tenant {tenant} (today)"), day)
            self._days[key] = td
            refresh = True
        if refresh or now - td.synced_at >= self.config.usage_refresh_s:
            td.ledger.catch_up(ctx.store.get_usage(tenant, day))
            td.synced_at = now
        return td.ledger

    def ledgers(self, ctx: Context, tenants: Sequence[str], *, now: float | None = None,
                refresh: bool = False) -> list[tuple[str, Ledger]]:
        """Today's ledgers of those of `tenants` that have limits, in their order."""
        if not self.config.tenant_limits:
            return []
        out = []
        for tenant in tenants:
            ledger = self.ledger(ctx, now=now, refresh=refresh, tenant=tenant)
            if ledger is not None:
                out.append((tenant, ledger))
        return out

    def reserve(self, ctx: Context, tenants: Sequence[str], kind: str, now: float
                ) -> list[Ledger]:
        """Take one effect of `kind` from today's ledger of every one of `tenants` (the run's
        tree, its own first) that has limits, all or none: raises `BudgetExceeded`, naming the
        tenant without room, after giving back what the ones before it reserved. Returns the
        ledgers reserved from (for `release`)."""
        taken: list[Ledger] = []
        for tenant, ledger in self.ledgers(ctx, tenants, now=now):
            try:
                ledger.reserve(kind)
            except BudgetExceeded as exc:
                self.release(taken, kind)
                if tenant != ctx.tenant:  # say why another tenant's day stops this run
                    raise BudgetExceeded(exc.budget, exc.limit, exc.spent,
                                         f"tenant {tenant} (today; tenant of a run above this "
                                         "one)") from None
                raise
            taken.append(ledger)
        return taken

    @staticmethod
    def release(ledgers: Sequence[Ledger], kind: str) -> None:
        """Give back what `reserve` took from `ledgers` (an effect refused before it ran)."""
        for ledger in ledgers:
            ledger.release(kind)

    def charge_live(self, ctx: Context, tenants: Sequence[str], kind: str, tokens_in: int,
                    tokens_out: int, cost_usd: float, *, reserved: bool = False) -> None:
        """Tenant-day accounting of one live effect, for every one of `tenants` (the run's
        tree): this process's ledgers (their counters unless `reserve` took them already), then
        the store's usage counters of each tenant, in one write on the run's write path (read
        before the increment is submitted, so it is never counted twice)."""
        now = ctx.store.now()
        for _, ledger in self.ledgers(ctx, tenants, now=now):
            if not reserved:
                ledger.charge_effect(kind)
            if tokens_in or tokens_out or cost_usd:
                ledger.charge_usage(tokens_in, tokens_out, cost_usd)
        if self.config.record_usage:
            ctx.add_usage(effect_usage(kind, tokens_in, tokens_out, cost_usd),
                          day=utc_day_at(now), tenants=tenants)
