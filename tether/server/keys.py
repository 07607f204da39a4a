"""API keys: who is calling the server, for which tenant, with which role.

A key is shown once, when it is created (`tether keys create`); the store keeps only its sha256.
Keys are 32 random bytes, so a fast hash is enough (nothing to brute-force as with a password),
and looking a key up by its hash means the secret is never compared character by character.

Roles are ordered, each may do what the ones below it may:

- `viewer`: read runs, timelines, event streams, the approvals inbox, tools and usage;
- `operator`: also submit runs, signal, cancel and resolve in-doubt steps;
- `approver`: also approve or deny pending actions (as the approver the key is named after);
- `admin`: also read the tenant's audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, cast

from tether.runtime.tenants import TENANT_NAME, TENANT_RULE
from tether.store import Store

_PREFIX = "tk_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


class Role(IntEnum):
    viewer = 1
    operator = 2
    approver = 3
    admin = 4

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text]
        except KeyError:
            raise KeyRequestError(f"unknown role {text!r}: use one of "
                                  f"{', '.join(r.name for r in cls)}") from None


class KeyRequestError(ValueError):
    """A key that cannot be created or revoked as asked (bad tenant, role or name)."""


@dataclass(frozen=True)
class Principal:
    """The caller a valid key stands for. `name` is who they are: the actor in the audit log,
    and for approvers the approver id their signed decisions must carry."""

    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: float = 0.0
    revoked_at: float | None = None

    def may(self, role: Role) -> bool:
        return self.role >= role

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "tenant": self.tenant, "role": self.role.name,
                "name": self.name, "created_at": self.created_at, "revoked_at": self.revoked_at}


class _KeysTx(Protocol):
    def insert_api_key(self, key_id: str, digest: str, tenant: str, role: str,
                       name: str) -> None: ...

    def api_keys(self, *, digest: str | None = None, tenant: str | None = None
                 ) -> list[tuple[Any, ...]]: ...

    def revoke_api_key(self, key_id: str) -> bool: ...


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _principal(row: tuple[Any, ...]) -> Principal:
    return Principal(row[0], row[1], Role[row[2]], row[3], row[4], row[5])


class ApiKeys:
    """The keys of one store (the SQLite backend's `api_keys` table, migration 5)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, tenant: str, role: str | Role, name: str | None = None
               ) -> tuple[str, Principal]:
        """A new key (returned once, never stored) and whom it stands for."""
        parsed = self.check(tenant, role, name)
        key_id = secrets.token_hex(6)
        name = name or f"{parsed.name}-{key_id}"
        key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self.store.write(lambda tx: cast(_KeysTx, tx).insert_api_key(
            key_id, _digest(key), tenant, parsed.name, name))
        return key, Principal(key_id, tenant, parsed, name)

    @staticmethod
    def check(tenant: str, role: str | Role, name: str | None = None) -> Role:
        """The role of a valid key request; KeyRequestError saying what is wrong otherwise.
        Callable before there is a store, so a bad request creates nothing."""
        if not TENANT_NAME.fullmatch(tenant):
            raise KeyRequestError(f"invalid tenant {tenant!r}: {TENANT_RULE}")
        parsed = role if isinstance(role, Role) else Role.parse(role)
        if parsed is Role.approver and not name:
            # an approver key decides as the approver it is named after (`Principal.name`):
            # a made-up `approver-<id>` matches no approvers-file entry, so every decision
            # sent with it would be refused
            raise KeyRequestError(
                "an approver key needs a name: the approver id it decides as, as the approvers "
                "file (--keys) registers it (tether keys create --name alice)")
        if name and not _NAME.fullmatch(name):  # none or empty: named after its role
            raise KeyRequestError(
                f"invalid key name {name!r}: 1-128 letters, digits, '.', '_', '@' or '-' (an "
                "approver's name is their approver id)")
        return parsed

    def authenticate(self, key: str) -> Principal | None:
        """Whom `key` stands for; None for an unknown, malformed or revoked key."""
        found = KeyLookup.of(key)
        return None if found is None else found.principal(self.store.write(found.rows))

    def list(self, tenant: str | None = None) -> list[Principal]:
        return [_principal(r) for r in
                self.store.write(lambda tx: cast(_KeysTx, tx).api_keys(tenant=tenant))]

    def revoke(self, key_id: str) -> bool:
        """False if no such key, or it was already revoked."""
        return bool(self.store.write(lambda tx: cast(_KeysTx, tx).revoke_api_key(key_id)))


class KeyLookup:
    """Finding a key as a store operation (`rows`) and its reading (`principal`), so a caller
    that batches its store work (the server's group committer) looks keys up in the same
    transactions as everything else instead of contending for the write lock."""

    def __init__(self, digest: str) -> None:
        self.digest = digest

    @classmethod
    def of(cls, key: str) -> KeyLookup | None:
        """None for what cannot be a key (no store access needed to refuse it)."""
        if not key.startswith(_PREFIX) or len(key) > 200:
            return None
        return cls(_digest(key))

    def rows(self, tx: Any) -> list[tuple[Any, ...]]:
        return cast(_KeysTx, tx).api_keys(digest=self.digest)

    @staticmethod
    def principal(rows: list[tuple[Any, ...]]) -> Principal | None:
        if not rows:
            return None
        found = _principal(rows[0])
        return None if found.revoked_at is not None else found
