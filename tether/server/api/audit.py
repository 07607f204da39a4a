"""The audit log: every approval, denial, refused decision and cancel made through the API —
who (the key's name and id), when, what. Rows live in the store (`audit`, migration 5), next
to the journals they concern, and are read back per tenant by `GET /v1/audit`.

`with_entry` writes an action and its entry in one transaction: written one after the other, a
store failing between the two left a run cancelled (or a step resolved) that the log never
mentions, while the caller was told the request failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from tether.server.keys import Principal
from tether.store import Store


class _AuditTx(Protocol):
    def insert_audit(self, tenant: str, actor: str, action: str, run_id: str | None,
                     detail: Any) -> int: ...

    def audit(self, tenant: str, *, after_id: int = 0, limit: int = 100
              ) -> list[tuple[Any, ...]]: ...


T = TypeVar("T")


def with_entry(op: Callable[[Any], T], who: Principal, action: str, run_id: str | None,
               detail: Callable[[T], Any]) -> Callable[[Any], T]:
    """A store operation doing `op` and recording it (`detail` of its result) atomically."""

    def both(tx: Any) -> T:
        done = op(tx)
        cast(_AuditTx, tx).insert_audit(who.tenant, f"{who.name} (key {who.key_id})", action,
                                        run_id, detail(done))
        return done
    return both


def record(store: Store, who: Principal, action: str, run_id: str | None, detail: Any) -> int:
    return int(store.write(lambda tx: cast(_AuditTx, tx).insert_audit(
        who.tenant, f"{who.name} (key {who.key_id})", action, run_id, detail)))


def entries(store: Store, tenant: str, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    return list(store.write(lambda tx: cast(_AuditTx, tx).audit(
        tenant, after_id=after_id, limit=limit)))
