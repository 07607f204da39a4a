"""Authentication by API key (`Authorization: Bearer tk_...`) and the role each route needs.

Every route below `/v1` depends on one of `viewer`, `operator`, `approver` or `admin`; the
principal it returns carries the tenant that scopes every query of the request.

A key is looked up in the store on every request (a revoked key is refused from the next request
on), in a transaction of the server's group committer. One route is hot enough for that wait to
matter — submitting a run — and it writes anyway: `SubmitOperator` takes a key already found
valid from memory and the submit's own transaction re-reads it (`KeyRecheck`), so a revoked key
still creates nothing, and the submit waits for one commit instead of two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tether.server.keys import KeyLookup, Principal, Role

from .errors import ApiError
from .state import commit, state_of

_bearer = HTTPBearer(auto_error=False, description="An API key from `tether keys create`.")


def unknown_key() -> ApiError:
    return ApiError(401, "unauthenticated", "unknown or revoked API key",
                    "Authorization header", "check the key; list keys with `tether keys list`")


class KeyRevoked(Exception):
    """Raised inside a write whose key, taken from memory, is no longer valid in the store."""


class KeyRecheck:
    """A key taken on trust from the server's memory for one request; `verify` re-reads it in
    the request's own write transaction, before anything is written."""

    def __init__(self, found: KeyLookup, principal: Principal) -> None:
        self.found, self.principal = found, principal

    def verify(self, tx: Any) -> None:
        now = KeyLookup.principal(self.found.rows(tx))
        if now is None or (now.key_id, now.tenant, now.role) != (
                self.principal.key_id, self.principal.tenant, self.principal.role):
            raise KeyRevoked(self.found.digest)


def recheck_of(request: Request) -> KeyRecheck | None:
    """The key the request's write must re-read (None: it was looked up in the store)."""
    found: KeyRecheck | None = getattr(request.state, "key_recheck", None)
    return found


def _one_authorization(request: Request) -> None:
    """Two Authorization headers are refused, not resolved: the first one won, while a proxy
    or log in front of the server may read the last — one request, two identities."""
    count = len(request.headers.getlist("authorization"))
    if count > 1:
        raise ApiError(400, "invalid_request",
                       f"the request has {count} Authorization headers; which key is meant "
                       "cannot be decided", "Authorization header",
                       "send exactly one 'Authorization: Bearer <key>'")


def _require(role: Role, *, rechecked: bool = False) -> Callable[..., object]:
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        _one_authorization(request)
        if credentials is None or credentials.scheme.lower() != "bearer":
            sent = request.headers.get("authorization")
            raise ApiError(401, "unauthenticated", "no API key in the request" if not sent
                           else "the Authorization header is not 'Bearer <key>' (another "
                           "scheme, or no key after it)", "Authorization header",
                           "send 'Authorization: Bearer <key>'; create a key with "
                           "`tether keys create --tenant T --role R`")
        found = KeyLookup.of(credentials.credentials)
        if found is None:
            raise unknown_key()
        state = state_of(request)
        principal = state.known_key(found.digest) if rechecked else None
        if principal is not None:
            request.state.key_recheck = KeyRecheck(found, principal)
        else:
            principal = found.principal(await commit(state, found.rows))
            if principal is None:
                state.forget_key(found.digest)
                raise unknown_key()
            state.remember_key(found.digest, principal)
        if not principal.may(role):
            raise ApiError(403, "forbidden",
                           f"this needs the {role.name} role; the key has {principal.role.name}",
                           "Authorization header",
                           f"use a key with role {role.name} or higher (roles: viewer < "
                           "operator < approver < admin)")
        return principal
    return dependency


Viewer = Annotated[Principal, Depends(_require(Role.viewer))]
Operator = Annotated[Principal, Depends(_require(Role.operator))]
#: an operator whose route calls `recheck_of(request).verify(tx)` in its own write
SubmitOperator = Annotated[Principal, Depends(_require(Role.operator, rechecked=True))]
Approver = Annotated[Principal, Depends(_require(Role.approver))]
Admin = Annotated[Principal, Depends(_require(Role.admin))]
