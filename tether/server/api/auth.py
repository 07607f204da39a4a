"""Authentication by API key (`Authorization: Bearer tk_...`) and the role each route needs.

Every route below `/v1` depends on one of `viewer`, `operator`, `approver` or `admin`; the
principal it returns carries the tenant that scopes every query of the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tether.server.keys import KeyLookup, Principal, Role

from .errors import ApiError
from .state import commit, state_of

_bearer = HTTPBearer(auto_error=False, description="An API key from `tether keys create`.")


def _require(role: Role) -> Callable[..., object]:
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "unauthenticated", "no API key in the request",
                           "Authorization header",
                           "send 'Authorization: Bearer <key>'; create a key with "
                           "`tether keys create --tenant T --role R`")
        found = KeyLookup.of(credentials.credentials)
        principal = (None if found is None else
                     found.principal(await commit(state_of(request), found.rows)))
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key",
                           "Authorization header",
                           "check the key; list keys with `tether keys list`")
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
Approver = Annotated[Principal, Depends(_require(Role.approver))]
Admin = Annotated[Principal, Depends(_require(Role.admin))]
