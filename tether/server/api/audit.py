"""The audit log: every approval, denial, refused decision and cancel made through the API —
who (the key's name and id), when, what. Rows live in the store (`audit`, migration 5), next
to the journals they concern, and are read back per tenant by `GET /v1/audit`."""

from __future__ import annotations

from typing import Any, Protocol, cast

from tether.server.keys import Principal
from tether.store import Store


class _AuditTx(Protocol):
    def insert_audit(self, tenant: str, actor: str, action: str, run_id: str | None,
                     detail: Any) -> int: ...

    def audit(self, tenant: str, *, after_id: int = 0, limit: int = 100
              ) -> list[tuple[Any, ...]]: ...


def record(store: Store, who: Principal, action: str, run_id: str | None, detail: Any) -> int:
    return int(store.write(lambda tx: cast(_AuditTx, tx).insert_audit(
        who.tenant, f"{who.name} (key {who.key_id})", action, run_id, detail)))


def entries(store: Store, tenant: str, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    return list(store.write(lambda tx: cast(_AuditTx, tx).audit(
        tenant, after_id=after_id, limit=limit)))
